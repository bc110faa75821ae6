#include "cli/run_command.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "engine/engine.h"

namespace serveml::cli {
namespace {

constexpr const char* kUsage =
    "usage: serveml run MODEL.onnx [--input NAME=FILE.pb]... [FILE.pb]... "
    "[--output-dir DIR]\n"
    "  Runs the model once. Inputs are serialized ONNX TensorProto files, given by name or\n"
    "  positionally in graph input order. Each output is written to DIR/<name>.pb\n"
    "  (default DIR: the current directory).\n";

bool ReadFile(const std::string& path, std::string* out) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return false;
  std::ostringstream ss;
  ss << f.rdbuf();
  if (f.bad()) return false;
  *out = std::move(ss).str();
  return true;
}

std::string SafeFileName(const std::string& name) {
  std::string s = name.empty() ? std::string("output") : name;
  for (char& c : s) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok) c = '_';
  }
  if (s == "." || s == "..") s = "_" + s;
  return s;
}

int Usage(const char* msg) {
  if (msg) std::fprintf(stderr, "serveml run: %s\n", msg);
  std::fputs(kUsage, stderr);
  return 2;
}

}  // namespace

int RunModelCommand(int argc, char** argv) {
  std::string model_path;
  std::string output_dir = ".";
  std::vector<std::pair<std::string, std::string>> named;  // (input name, file)
  std::vector<std::string> positional;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&](const std::string& flag, std::string* out) -> bool {
      if (a == flag) {
        if (i + 1 >= argc) return false;
        *out = argv[++i];
        return true;
      }
      if (a.rfind(flag + "=", 0) == 0) {
        *out = a.substr(flag.size() + 1);
        return true;
      }
      return false;
    };
    std::string v;
    if (a == "-h" || a == "--help") {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (a == "--input" || a.rfind("--input=", 0) == 0) {
      if (!value("--input", &v)) return Usage("--input needs NAME=FILE");
      size_t eq = v.find('=');
      if (eq == std::string::npos || eq == 0) return Usage("--input needs NAME=FILE");
      named.emplace_back(v.substr(0, eq), v.substr(eq + 1));
    } else if (a == "--output-dir" || a.rfind("--output-dir=", 0) == 0) {
      if (!value("--output-dir", &v)) return Usage("--output-dir needs a directory");
      output_dir = v;
    } else if (a.size() > 1 && a[0] == '-') {
      return Usage(("unknown option " + a).c_str());
    } else if (model_path.empty()) {
      model_path = a;
    } else {
      positional.push_back(a);
    }
  }
  if (model_path.empty()) return Usage("missing MODEL");

  std::string bytes;
  if (!ReadFile(model_path, &bytes)) {
    std::fprintf(stderr, "serveml run: cannot read %s\n", model_path.c_str());
    return 1;
  }
  auto loaded = engine::Model::LoadOnnx(bytes);
  if (!loaded.ok()) {
    std::fprintf(stderr, "serveml run: %s\n", loaded.status().ToString().c_str());
    return 1;
  }
  const engine::Model& model = **loaded;
  const auto& infos = model.inputs();

  std::vector<std::string> files(infos.size());
  for (const auto& [name, file] : named) {
    size_t k = 0;
    while (k < infos.size() && infos[k].name != name) ++k;
    if (k == infos.size()) {
      std::string names;
      for (const auto& in : infos) names += (names.empty() ? "" : ", ") + in.name;
      std::fprintf(stderr, "serveml run: the model has no input '%s' (inputs: %s)\n", name.c_str(),
                   names.c_str());
      return 2;
    }
    files[k] = file;
  }
  size_t next = 0;
  for (const std::string& file : positional) {
    while (next < files.size() && !files[next].empty()) ++next;
    if (next == files.size()) return Usage("more input files than model inputs");
    files[next] = file;
  }
  std::vector<Tensor> inputs;
  for (size_t k = 0; k < infos.size(); ++k) {
    if (files[k].empty()) {
      std::fprintf(stderr, "serveml run: no file given for input '%s'\n", infos[k].name.c_str());
      return 2;
    }
    std::string data;
    if (!ReadFile(files[k], &data)) {
      std::fprintf(stderr, "serveml run: cannot read %s\n", files[k].c_str());
      return 1;
    }
    auto t = engine::ReadTensorProto(data, nullptr);
    if (!t.ok()) {
      std::fprintf(stderr, "serveml run: %s: %s\n", files[k].c_str(),
                   t.status().ToString().c_str());
      return 1;
    }
    inputs.push_back(std::move(t).value());
  }

  auto outputs = model.Run(inputs);
  if (!outputs.ok()) {
    std::fprintf(stderr, "serveml run: %s\n", outputs.status().ToString().c_str());
    return 1;
  }
  std::error_code ec;
  std::filesystem::create_directories(output_dir, ec);
  if (ec) {
    std::fprintf(stderr, "serveml run: cannot create %s: %s\n", output_dir.c_str(),
                 ec.message().c_str());
    return 1;
  }
  for (size_t k = 0; k < outputs->size(); ++k) {
    const auto& info = model.outputs()[k];
    const Tensor& t = (*outputs)[k];
    std::filesystem::path path =
        std::filesystem::path(output_dir) / (SafeFileName(info.name) + ".pb");
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    std::string data = engine::WriteTensorProto(t, info.name);
    f.write(data.data(), static_cast<std::streamsize>(data.size()));
    if (!f) {
      std::fprintf(stderr, "serveml run: cannot write %s\n", path.c_str());
      return 1;
    }
    std::printf("%s: %s %s -> %s\n", info.name.c_str(), std::string(DTypeName(t.dtype())).c_str(),
                ShapeToString(t.shape()).c_str(), path.c_str());
  }
  return 0;
}

}  // namespace serveml::cli
