#include "cli/run_command.h"

#include <cstdio>

namespace serveml::cli {

int RunModelCommand(int /*argc*/, char** /*argv*/) {
  std::fprintf(stderr, "serveml run: not implemented yet\n");
  return 2;
}

}  // namespace serveml::cli
