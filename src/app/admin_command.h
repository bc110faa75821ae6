// `serveml admin ...`: operator commands that work on a data directory directly (the
// server may be running: SQLite serializes the writes).
#pragma once

namespace serveml::app {

// argv[0] is "admin". Returns the process exit code.
int AdminCommand(int argc, char** argv);

}  // namespace serveml::app
