// `serveml serve`: wires stores, services, API and HTTP server together and runs until
// SIGTERM/SIGINT, then drains in-flight requests and exits 0.
#pragma once

namespace serveml::app {

// argv[0] is "serve". Returns the process exit code.
int ServeCommand(int argc, char** argv);

}  // namespace serveml::app
