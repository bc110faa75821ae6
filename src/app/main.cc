// serveml: one binary that is the server (`serve`), the engine driver (`run`) and the
// client CLI (everything else).
#include <cstdio>
#include <cstring>
#include <string>

#include "cli/run_command.h"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: serveml <serve|run|login|deploy|list|predict|delete> ...\n");
    return 2;
  }
  std::string cmd = argv[1];
  if (cmd == "run") return serveml::cli::RunModelCommand(argc - 1, argv + 1);
  std::fprintf(stderr, "serveml: unknown command '%s'\n", cmd.c_str());
  return 2;
}
