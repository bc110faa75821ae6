// joblib's compressed files: the whole pickle stream (array bytes included) compressed with
// zlib, gzip, bz2, xz or lzma ("alone" format). Detected by magic bytes, inflated with a hard
// output bound so a decompression bomb fails fast.
#include <bzlib.h>
#include <lzma.h>
#include <zlib.h>

#include <algorithm>
#include <cstdint>

#include "importers/pickle/reader.h"

namespace serveml::importers::pickle {
namespace {

constexpr size_t kChunk = 1 << 16;

// The output bound of one decompression and which limit sets it.
struct OutputLimit {
  size_t bytes;
  bool by_ratio;  // max(min_inflate_bytes, ratio x input) rather than max_inflated_bytes
  size_t input;
  size_t ratio;
  size_t floor;
};

OutputLimit LimitFor(size_t in, const ReaderLimits& limits) {
  const size_t ratio = std::max<size_t>(limits.max_inflate_ratio, 1);
  const size_t by_ratio =
      std::max<size_t>(in > SIZE_MAX / ratio ? SIZE_MAX : in * ratio, limits.min_inflate_bytes);
  if (by_ratio < limits.max_inflated_bytes)
    return {by_ratio, true, in, ratio, limits.min_inflate_bytes};
  return {limits.max_inflated_bytes, false, in, ratio, limits.min_inflate_bytes};
}

Status TooBig(const char* what, const OutputLimit& limit) {
  std::string msg = std::string("the ") + what + " stream inflates to more than " +
                    std::to_string(limit.bytes >> 20) + " MiB";
  if (limit.by_ratio) {
    msg += " (decompression ratio limit: " + std::to_string(limit.ratio) + " x the " +
           std::to_string(limit.input) + "-byte file, at least " +
           std::to_string(limit.floor >> 20) + " MiB)";
  } else {
    msg += " (decompressed size limit)";
  }
  return InvalidInput(msg + "; refusing it");
}

// Grows `out` by one chunk without letting its capacity run far past `limit` (plain
// doubling could reserve twice the limit).
void GrowChunk(std::string& out, size_t limit) {
  const size_t need = out.size() + kChunk;
  if (need > out.capacity()) {
    out.reserve(std::max(need, std::min(out.capacity() * 2, limit + kChunk)));
  }
  out.resize(need);
}

Result<std::string> Inflate(std::string_view in, bool gzip, const OutputLimit& limit) {
  z_stream z{};
  if (inflateInit2(&z, gzip ? 15 + 16 : 15) != Z_OK) return Internal("zlib init failed");
  std::string out;
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(std::min<size_t>(in.size(), UINT32_MAX));
  int rc = Z_OK;
  while (rc != Z_STREAM_END) {
    if (out.size() >= limit.bytes) {
      inflateEnd(&z);
      return TooBig(gzip ? "gzip" : "zlib", limit);
    }
    size_t old = out.size();
    GrowChunk(out, limit.bytes);
    z.next_out = reinterpret_cast<Bytef*>(out.data() + old);
    z.avail_out = kChunk;
    rc = inflate(&z, Z_NO_FLUSH);
    out.resize(old + kChunk - z.avail_out);
    if (rc == Z_BUF_ERROR && z.avail_in == 0) {
      inflateEnd(&z);
      return InvalidInput(std::string("the ") + (gzip ? "gzip" : "zlib") + " stream is truncated");
    }
    if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR) {
      inflateEnd(&z);
      return InvalidInput(std::string("the ") + (gzip ? "gzip" : "zlib") + " stream is corrupt (" +
                          (z.msg ? z.msg : "error") + ")");
    }
  }
  inflateEnd(&z);
  return out;
}

Result<std::string> Bunzip(std::string_view in, const OutputLimit& limit) {
  bz_stream b{};
  if (BZ2_bzDecompressInit(&b, 0, 0) != BZ_OK) return Internal("bz2 init failed");
  std::string out;
  b.next_in = const_cast<char*>(in.data());
  b.avail_in = static_cast<unsigned>(std::min<size_t>(in.size(), UINT32_MAX));
  int rc = BZ_OK;
  while (rc != BZ_STREAM_END) {
    if (out.size() >= limit.bytes) {
      BZ2_bzDecompressEnd(&b);
      return TooBig("bz2", limit);
    }
    size_t old = out.size();
    GrowChunk(out, limit.bytes);
    b.next_out = out.data() + old;
    b.avail_out = kChunk;
    rc = BZ2_bzDecompress(&b);
    out.resize(old + kChunk - b.avail_out);
    if (rc != BZ_OK && rc != BZ_STREAM_END) {
      BZ2_bzDecompressEnd(&b);
      return InvalidInput("the bz2 stream is corrupt");
    }
    if (rc == BZ_OK && b.avail_in == 0 && b.avail_out != 0) {
      BZ2_bzDecompressEnd(&b);
      return InvalidInput("the bz2 stream is truncated");
    }
  }
  BZ2_bzDecompressEnd(&b);
  return out;
}

Result<std::string> Unxz(std::string_view in, bool alone, const OutputLimit& limit) {
  lzma_stream s = LZMA_STREAM_INIT;
  const uint64_t memlimit = 256u << 20;
  lzma_ret rc = alone ? lzma_alone_decoder(&s, memlimit) : lzma_stream_decoder(&s, memlimit, 0);
  if (rc != LZMA_OK) return Internal("lzma init failed");
  std::string out;
  s.next_in = reinterpret_cast<const uint8_t*>(in.data());
  s.avail_in = in.size();
  const char* what = alone ? "lzma" : "xz";
  while (true) {
    if (out.size() >= limit.bytes) {
      lzma_end(&s);
      return TooBig(what, limit);
    }
    size_t old = out.size();
    GrowChunk(out, limit.bytes);
    s.next_out = reinterpret_cast<uint8_t*>(out.data() + old);
    s.avail_out = kChunk;
    rc = lzma_code(&s, s.avail_in == 0 ? LZMA_FINISH : LZMA_RUN);
    out.resize(old + kChunk - s.avail_out);
    if (rc == LZMA_STREAM_END) break;
    if (rc == LZMA_BUF_ERROR) {
      lzma_end(&s);
      return InvalidInput(std::string("the ") + what + " stream is truncated");
    }
    if (rc != LZMA_OK) {
      lzma_end(&s);
      return InvalidInput(std::string("the ") + what + " stream is corrupt (code " +
                          std::to_string(static_cast<int>(rc)) + ")");
    }
  }
  lzma_end(&s);
  return out;
}

bool Has(std::string_view b, std::string_view magic) { return b.substr(0, magic.size()) == magic; }

}  // namespace

Result<std::string> MaybeDecompress(std::string_view bytes, const ReaderLimits& limits,
                                    std::string* compression) {
  compression->clear();
  const OutputLimit limit = LimitFor(bytes.size(), limits);
  if (bytes.size() >= 2 && static_cast<uint8_t>(bytes[0]) == 0x78 &&
      ((static_cast<uint8_t>(bytes[0]) << 8) | static_cast<uint8_t>(bytes[1])) % 31 == 0) {
    *compression = "zlib";
    return Inflate(bytes, false, limit);
  }
  if (Has(bytes, "\x1f\x8b")) {
    *compression = "gzip";
    return Inflate(bytes, true, limit);
  }
  if (Has(bytes, "BZh")) {
    *compression = "bz2";
    return Bunzip(bytes, limit);
  }
  if (Has(bytes, std::string_view("\xfd\x37\x7a\x58\x5a\x00", 6))) {
    *compression = "xz";
    return Unxz(bytes, false, limit);
  }
  if (Has(bytes, std::string_view("\x5d\x00\x00", 3))) {
    *compression = "lzma";
    return Unxz(bytes, true, limit);
  }
  if (Has(bytes, "ZF")) {
    return InvalidInput(
        "this joblib file uses the compression format of joblib < 0.10, which is not "
        "supported; re-save it with a current joblib");
  }
  if (Has(bytes, std::string_view("\x04\x22\x4d\x18", 4))) {
    return InvalidInput(
        "lz4-compressed joblib files are not supported; use compress=('zlib', 3), "
        "'gzip', 'bz2', 'xz' or 'lzma'");
  }
  return std::string();
}

}  // namespace serveml::importers::pickle
