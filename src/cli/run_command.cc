#include "cli/run_command.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "engine/isa.h"

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

// Random inputs for `--bench`: declared shapes with dynamic dims set to `batch` (first dim)
// or 1; floats uniform in [-1, 1], integers and bools zero.
bool BenchInputs(const engine::Model& model, int64_t batch, std::vector<Tensor>* out) {
  std::mt19937 rng(42);
  std::uniform_real_distribution<double> uni(-1.0, 1.0);
  for (const auto& info : model.inputs()) {
    std::vector<int64_t> shape = info.shape;
    for (size_t d = 0; d < shape.size(); ++d) {
      if (shape[d] < 0) shape[d] = d == 0 ? batch : 1;
    }
    if (!shape.empty() && info.shape[0] >= 0 && info.shape[0] != batch && batch != 1) {
      std::fprintf(stderr, "serveml run: input '%s' has a fixed batch of %lld\n", info.name.c_str(),
                   static_cast<long long>(info.shape[0]));
      return false;
    }
    const DType dt = info.dtype == DType::kUndefined ? DType::kFloat32 : info.dtype;
    if (dt == DType::kString) {
      std::fprintf(stderr, "serveml run: --bench cannot generate string inputs\n");
      return false;
    }
    Tensor t(dt, shape);
    if (dt == DType::kFloat32) {
      for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = static_cast<float>(uni(rng));
    } else if (dt == DType::kFloat64) {
      for (int64_t i = 0; i < t.numel(); ++i) t.data<double>()[i] = uni(rng);
    }
    out->push_back(std::move(t));
  }
  return true;
}

// Times `runs` calls of Model::Run after `warmup` calls and prints one JSON line with the
// per-call latency distribution in microseconds.
int Bench(const engine::Model& model, std::vector<Tensor> inputs, int64_t batch, int64_t runs,
          int64_t warmup) {
  for (int64_t i = 0; i < warmup; ++i) {
    auto r = model.Run(inputs);
    if (!r.ok()) {
      std::fprintf(stderr, "serveml run: %s\n", r.status().ToString().c_str());
      return 1;
    }
  }
  std::vector<double> us(static_cast<size_t>(runs));
  for (int64_t i = 0; i < runs; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    auto r = model.Run(inputs);
    const auto t1 = std::chrono::steady_clock::now();
    if (!r.ok()) {
      std::fprintf(stderr, "serveml run: %s\n", r.status().ToString().c_str());
      return 1;
    }
    us[i] = std::chrono::duration<double, std::micro>(t1 - t0).count();
  }
  std::vector<double> sorted = us;
  std::sort(sorted.begin(), sorted.end());
  auto pct = [&](double p) {
    return sorted[std::min(sorted.size() - 1, static_cast<size_t>(p * sorted.size()))];
  };
  double sum = 0;
  for (double v : us) sum += v;
  std::printf(
      "{\"batch\": %lld, \"runs\": %lld, \"median_us\": %.3f, \"p10_us\": %.3f, "
      "\"p90_us\": %.3f, \"mean_us\": %.3f, \"isa\": \"%s\"}\n",
      static_cast<long long>(batch), static_cast<long long>(runs), pct(0.5), pct(0.1), pct(0.9),
      sum / static_cast<double>(runs), std::string(engine::IsaName(engine::ActiveIsa())).c_str());
  return 0;
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
  int64_t bench_runs = 0, bench_batch = 1, bench_warmup = 200;  // hidden benchmark mode
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
    } else if (a == "--bench" || a == "--batch" || a == "--warmup") {
      if (i + 1 >= argc) return Usage("--bench/--batch/--warmup need a number");
      const long long n = std::atoll(argv[++i]);
      if (n <= 0 && a != "--warmup") return Usage("--bench/--batch need a positive number");
      (a == "--bench" ? bench_runs : a == "--batch" ? bench_batch : bench_warmup) = n;
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
  if (bench_runs > 0 && named.empty() && positional.empty()) {
    std::vector<Tensor> inputs;
    if (!BenchInputs(model, bench_batch, &inputs)) return 1;
    return Bench(model, std::move(inputs), bench_batch, bench_runs, bench_warmup);
  }

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

  if (bench_runs > 0) {
    return Bench(model, inputs, inputs.empty() || inputs[0].rank() == 0 ? 1 : inputs[0].dim(0),
                 bench_runs, bench_warmup);
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
