// table_test.cpp: the command table against a std::map model, and the command pool.
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <random>
#include <vector>

#include "cmd/table.hpp"

namespace {

std::unique_ptr<nbd::Command> command(uint64_t cookie) {
  auto c = std::make_unique<nbd::Command>();
  c->cookie = cookie;
  return c;
}

// The table holds exactly the model's cookies, each found where it should be.
void expect_same(const nbd::CommandTable& t, const std::map<uint64_t, bool>& model, uint64_t next) {
  ASSERT_EQ(t.size(), model.size());
  size_t seen = 0;
  t.for_each([&](const nbd::Command& c) {
    EXPECT_EQ(model.count(c.cookie), 1u) << c.cookie;
    ++seen;
  });
  EXPECT_EQ(seen, model.size());
  for (uint64_t k = next > 300 ? next - 300 : 1; k < next; ++k) {
    nbd::Command* c = t.find(k);
    if (model.count(k) != 0) {
      ASSERT_NE(c, nullptr) << k;
      EXPECT_EQ(c->cookie, k);
    } else {
      EXPECT_EQ(c, nullptr) << k;
    }
  }
}

TEST(CommandTable, RandomInsertAndTakeMatchesAMap) {
  std::mt19937_64 rng(12345);
  nbd::CommandTable t;
  std::map<uint64_t, bool> model;
  uint64_t next = 1;
  // A few commands stay in flight for long (as a slow request would) while the others cycle,
  // so sequential cookies wrap around the array onto occupied slots; the depth varies so the
  // table grows through several sizes.
  for (int step = 0; step < 20000; ++step) {
    const size_t depth = step < 10000 ? 40 : 200;
    if (model.size() < depth && (model.empty() || rng() % 3 != 0)) {
      t.insert(command(next));
      model[next] = true;
      ++next;
    } else {
      auto it = model.begin();
      // Mostly the oldest but one (the oldest lingers), sometimes a random one.
      if (model.size() > 1)
        std::advance(it, rng() % 4 == 0 ? rng() % model.size() : 1);
      auto c = t.take(it->first);
      ASSERT_NE(c, nullptr);
      EXPECT_EQ(c->cookie, it->first);
      model.erase(it);
    }
    if (step % 97 == 0)
      expect_same(t, model, next);
  }
  expect_same(t, model, next);
  EXPECT_EQ(t.take(next + 5), nullptr);
  while (nbd::Command* c = t.any()) {
    ASSERT_EQ(model.erase(c->cookie), 1u);
    t.take(c->cookie);
  }
  EXPECT_TRUE(model.empty());
  EXPECT_TRUE(t.empty());
}

struct FreeLog {
  std::vector<std::string> order;
};

template <class C>
C logging(FreeLog* log, const char* name) {
  C c{};
  c.user_data = log;
  c.free = name[0] == 'c' ? +[](void* p) { static_cast<FreeLog*>(p)->order.push_back("completion"); }
           : name[0] == 'h' ? +[](void* p) { static_cast<FreeLog*>(p)->order.push_back("chunk"); }
                            : +[](void* p) { static_cast<FreeLog*>(p)->order.push_back("extent"); };
  return c;
}

TEST(CommandPool, RecycledCommandsAreClearAndFreeTheirClosuresCompletionLast) {
  FreeLog log;
  nbd::CommandPool pool;
  auto c = pool.get();
  c->cookie = 7;
  c->error = EIO;
  c->completion = nbd::Closure<nbd_completion_callback>(logging<nbd_completion_callback>(&log, "c"));
  c->chunk = nbd::Closure<nbd_chunk_callback>(logging<nbd_chunk_callback>(&log, "h"));
  c->extent = nbd::Closure<nbd_extent_callback>(logging<nbd_extent_callback>(&log, "e"));
  nbd::Command* raw = c.get();
  pool.put(std::move(c));
  EXPECT_EQ(log.order, (std::vector<std::string>{"extent", "chunk", "completion"}));
  auto again = pool.get();
  EXPECT_EQ(again.get(), raw);  // reused
  EXPECT_EQ(again->cookie, 0u);
  EXPECT_EQ(again->error, 0);
  EXPECT_TRUE(again->completion.empty());
  EXPECT_NE(pool.get().get(), raw);
}

TEST(CommandTable, ShrinksOnlyWhenEmptyAndOversizedAndWorksAfter) {
  nbd::CommandTable t;
  for (uint64_t cookie = 1; cookie <= 100; ++cookie) {
    auto c = std::make_unique<nbd::Command>();
    c->cookie = cookie;
    t.insert(std::move(c));
  }
  t.shrink();  // not empty: nothing changes
  for (uint64_t cookie = 1; cookie <= 100; ++cookie)
    ASSERT_NE(t.find(cookie), nullptr);
  const size_t slots = t.slot_count();
  for (uint64_t cookie = 1; cookie <= 100; ++cookie)
    ASSERT_NE(t.take(cookie), nullptr);
  t.shrink();  // empty, but it held 100 since the last call: kept for the next burst
  EXPECT_EQ(t.slot_count(), slots);
  t.shrink();  // nothing since: freed
  EXPECT_LT(t.slot_count(), slots);
  EXPECT_TRUE(t.empty());
  EXPECT_EQ(t.find(5), nullptr);
  EXPECT_EQ(t.take(5), nullptr);
  EXPECT_EQ(t.any(), nullptr);
  auto c = std::make_unique<nbd::Command>();
  c->cookie = 101;
  t.insert(std::move(c));
  ASSERT_NE(t.find(101), nullptr);
  EXPECT_EQ(t.find(101)->cookie, 101u);
}

TEST(CommandPool, TrimFreesTheSparesNoRequestTookDownToTwo) {
  nbd::CommandPool pool;
  std::vector<std::unique_ptr<nbd::Command>> cmds;
  for (int i = 0; i < 10; ++i)
    cmds.push_back(pool.get());
  const nbd::Command* first = cmds[0].get();
  const nbd::Command* second = cmds[1].get();
  for (auto& c : cmds)
    pool.put(std::move(c));
  pool.trim();  // all ten were in use since the last trim: kept
  pool.put(pool.get());
  pool.trim();  // only one was taken since: all but two go
  auto a = pool.get();
  auto b = pool.get();
  EXPECT_EQ(a.get(), second);
  EXPECT_EQ(b.get(), first);
  EXPECT_EQ(pool.get()->cookie, 0u);  // a new one
}

}  // namespace
