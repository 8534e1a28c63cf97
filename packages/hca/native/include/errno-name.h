// The name of an errno value (EMFILE, ECONNRESET, ...) for an Error's
// `code`, as Node names its own system errors. libuv knows them all; a
// short table of our own once named everything it lacked EIO, so running
// out of descriptors (EMFILE) read as an I/O error.
#pragma once
#include <uv.h>
#include <string>

namespace ibal {

inline std::string ErrnoName(int err) {
  char buf[64];
  uv_err_name_r(-err, buf, sizeof buf);
  return buf;
}

}  // namespace ibal
