// progress.hpp: `nbdpp copy --progress`: a live bar on a terminal, percentage lines otherwise.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <optional>

namespace nbdpp {

// Shows how far a copy has got, on stderr.  On a terminal one line is redrawn with "\r" (a bar,
// the percentage and the rate); anywhere else a line "nbdpp: copy N%" is written each time the
// whole percentage grows, so logs stay readable.  With an unknown total (a stream source) it
// shows bytes instead.  Called from one thread only.
class Progress {
 public:
  Progress(bool enabled, std::optional<uint64_t> total);

  void update(uint64_t done);
  // The last update (100% when the total is known) and the end of the terminal line.
  void finish(uint64_t done);

 private:
  void draw(uint64_t done, bool final);

  bool enabled_;
  bool tty_;
  std::optional<uint64_t> total_;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_draw_;
  int last_percent_ = -1;
  uint64_t last_mib_ = 0;
};

}  // namespace nbdpp
