// progress.cpp: the progress bar and percentage lines of `nbdpp copy --progress`.
#include "progress.hpp"

#include <unistd.h>

#include <cinttypes>
#include <string>

namespace nbdpp {

namespace {

constexpr int kBarWidth = 30;
constexpr auto kRedrawInterval = std::chrono::milliseconds{100};

}  // namespace

Progress::Progress(bool enabled, std::optional<uint64_t> total)
    : enabled_(enabled),
      tty_(isatty(STDERR_FILENO) == 1),
      total_(total),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {
  if (enabled_)
    draw(0, false);
}

void Progress::update(uint64_t done) {
  if (enabled_)
    draw(done, false);
}

void Progress::finish(uint64_t done) {
  if (!enabled_)
    return;
  if (total_)
    done = *total_;
  draw(done, true);
  if (tty_)
    std::fputc('\n', stderr);
  std::fflush(stderr);
}

void Progress::draw(uint64_t done, bool final) {
  const auto now = std::chrono::steady_clock::now();
  const double seconds = std::chrono::duration<double>(now - start_).count();
  const double mib = static_cast<double>(done) / (1024.0 * 1024.0);
  const double rate = seconds > 0 ? mib / seconds : 0.0;

  if (tty_) {
    if (!final && done != 0 && now - last_draw_ < kRedrawInterval)
      return;
    last_draw_ = now;
    if (total_) {
      const double fraction =
          *total_ == 0 ? 1.0 : static_cast<double>(done) / static_cast<double>(*total_);
      const int filled = static_cast<int>(fraction * kBarWidth);
      std::string bar(static_cast<size_t>(filled), '#');
      bar.append(static_cast<size_t>(kBarWidth - filled), '.');
      std::fprintf(stderr, "\rnbdpp: [%s] %3d%% %9.1f MiB/s ", bar.c_str(),
                   static_cast<int>(fraction * 100), rate);
    } else {
      std::fprintf(stderr, "\rnbdpp: %10.1f MiB copied %9.1f MiB/s ", mib, rate);
    }
    std::fflush(stderr);
    return;
  }

  // Not a terminal: whole lines, only when something changed.
  if (total_) {
    const int percent =
        *total_ == 0 ? 100
                     : static_cast<int>(static_cast<double>(done) * 100.0 /
                                        static_cast<double>(*total_));
    if (percent == last_percent_)
      return;
    last_percent_ = percent;
    std::fprintf(stderr, "nbdpp: copy %d%%\n", percent);
  } else {
    // One line per 64 MiB, and the last.
    const uint64_t step = done >> 26;
    if (!final && (done == 0 || step == last_mib_))
      return;
    last_mib_ = step;
    std::fprintf(stderr, "nbdpp: copy %" PRIu64 " bytes\n", done);
  }
  std::fflush(stderr);
}

}  // namespace nbdpp
