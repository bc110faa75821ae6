// serveml: one binary that is the server (`serve`), the engine driver (`run`) and the
// client CLI (everything else).
#include <cstdio>
#include <cstring>
#include <string>

#include "app/admin_command.h"
#include "app/serve_command.h"
#include "app/validate_command.h"
#include "cli/client_commands.h"
#include "cli/run_command.h"
#include "engine/isa.h"

namespace {
void Usage() {
  std::fprintf(stderr,
               "usage: serveml <command> [options]\n"
               "  serve [--host H] [--port P] [--data-dir D] [--config FILE]   run the server\n"
               "  run MODEL --input NAME=FILE.pb ... --output-dir DIR          run a model once\n"
               "  register | login | deploy | list | predict | delete | status  client commands\n"
               "  admin create-user --data-dir D --email E --username U       add an account\n"
               "  version\n");
}
}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    Usage();
    return 2;
  }
  std::string cmd = argv[1];
  if (cmd == "serve") return serveml::app::ServeCommand(argc - 1, argv + 1);
  if (cmd == "admin") return serveml::app::AdminCommand(argc - 1, argv + 1);
  if (cmd == "validate") return serveml::app::ValidateCommand(argc - 1, argv + 1);
  if (cmd == "run") return serveml::cli::RunModelCommand(argc - 1, argv + 1);
  if (cmd == "version" || cmd == "--version") {
    std::printf("serveml %s\n", SERVEML_VERSION);
    // The kernels' instruction set, and every level SERVEML_ENGINE_ISA may choose here.
    using serveml::engine::Isa;
    std::string levels;
    for (Isa i : {Isa::kPortable, Isa::kAvx2, Isa::kAvx512, Isa::kAvx512Vnni}) {
      if (i <= serveml::engine::CpuIsa()) (levels += ' ') += serveml::engine::IsaName(i);
    }
    std::printf("engine ISA: %s; levels this CPU runs:%s\n", serveml::engine::IsaSummary().c_str(),
                levels.c_str());
    return 0;
  }
  if (serveml::cli::IsClientCommand(cmd)) return serveml::cli::RunClientCommand(argc - 1, argv + 1);
  if (cmd == "help" || cmd == "--help" || cmd == "-h") {
    Usage();
    return 0;
  }
  std::fprintf(stderr, "serveml: unknown command '%s'\n", cmd.c_str());
  Usage();
  return 2;
}
