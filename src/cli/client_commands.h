// The client side of the `serveml` binary: login, register, logout, deploy, list, predict,
// delete, status and help. Each command talks to a ServeML server over the REST API v1
// (see /work/shared/SPEC.md); connection settings come from flags, the environment or
// `$HOME/.serveml/config.json` (see cli/client_config.h).
#pragma once

#include <string_view>

namespace serveml::cli {

// True if `cmd` is one of the client commands (including "help", "--help" and "-h").
bool IsClientCommand(std::string_view cmd);

// Runs a client command. argv[0] is the command name (e.g. "deploy"); argv[1..argc) are its
// arguments. Results go to stdout, errors and progress to stderr. Returns the process exit
// code: 0 ok, 1 server/API/connection error, 2 usage error. Never throws; never prints the
// token or the password.
int RunClientCommand(int argc, char** argv);

}  // namespace serveml::cli
