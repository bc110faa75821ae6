// `serveml validate`: the isolated child that imports and validates one uploaded model file
// for the server (protocol and confinement: platform/import_sandbox.h).
#pragma once

namespace serveml::app {

// argv[0] is "validate". Returns the process exit code.
int ValidateCommand(int argc, char** argv);

}  // namespace serveml::app
