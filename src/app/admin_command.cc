#include "app/admin_command.h"

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <string_view>

#include "core/crypto.h"
#include "platform/accounts.h"
#include "store/metadata_store.h"

namespace serveml::app {

namespace {

int Usage() {
  std::fprintf(stderr,
               "usage: serveml admin create-user --data-dir D --email E --username U "
               "[--full-name N]\n"
               "  The password is read from SERVEML_ADMIN_PASSWORD, else from the first line of "
               "stdin.\n"
               "  Works whether registration is open or closed (--registration closed).\n");
  return 2;
}

int CreateUser(int argc, char** argv) {
  std::string data_dir, email, username, full_name;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (i + 1 >= argc) return Usage();
    std::string v = argv[++i];
    if (a == "--data-dir")
      data_dir = v;
    else if (a == "--email")
      email = v;
    else if (a == "--username")
      username = v;
    else if (a == "--full-name")
      full_name = v;
    else
      return Usage();
  }
  if (data_dir.empty() || email.empty() || username.empty()) return Usage();
  std::string password;
  if (const char* p = std::getenv("SERVEML_ADMIN_PASSWORD"); p && *p) {
    password = p;
  } else if (!std::getline(std::cin, password)) {
    std::fprintf(stderr, "serveml admin: no password (set SERVEML_ADMIN_PASSWORD or pipe it)\n");
    return 2;
  }
  if (!InitCrypto()) return 1;
  auto store = store::OpenSqliteStore(data_dir + "/serveml.db");
  if (!store.ok()) {
    std::fprintf(stderr, "serveml admin: %s\n", store.status().message().c_str());
    return 1;
  }
  auto signer = platform::TokenSigner::LoadOrCreate(data_dir + "/jwt.key");
  if (!signer.ok()) {
    std::fprintf(stderr, "serveml admin: %s\n", signer.status().message().c_str());
    return 1;
  }
  platform::Accounts accounts(store->get(), std::move(signer).value(), 3600);
  auto u = accounts.CreateUser(email, username, password, full_name);
  if (!u.ok()) {
    std::fprintf(stderr, "serveml admin: %s\n", u.status().message().c_str());
    return 1;
  }
  std::printf("created user %s (%s)\n", u->username.c_str(), u->id.c_str());
  return 0;
}

}  // namespace

int AdminCommand(int argc, char** argv) {
  if (argc >= 2 && std::string_view(argv[1]) == "create-user")
    return CreateUser(argc - 1, argv + 1);
  return Usage();
}

}  // namespace serveml::app
