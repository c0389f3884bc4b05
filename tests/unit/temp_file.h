// A fresh, empty file under /tmp for a test to write and remove.
#pragma once

#include <unistd.h>

#include <cstdlib>
#include <string>

inline std::string temp_path() {
  char tmpl[] = "/tmp/natbpf-test-XXXXXX";
  int fd = mkstemp(tmpl);
  if (fd >= 0) close(fd);
  return tmpl;
}
