// Local-directory BlobStore. Layout under root:
//   root/tmp/<random>.part   files being written (removed at open: a crash leftover)
//   root/ab/abcdef...        complete blobs, named by the sha256 of their bytes
//
// A blob appears under its final name only through rename(2) of a fully written and
// fsynced file, followed by an fsync of the directory, so after a crash a final name holds
// either nothing or the whole blob. Get re-hashes every read, so later corruption (bit rot,
// an operator editing a file) is reported instead of served.
//
// One process per root: Open clears root/tmp, which would break another live process's
// uploads.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string_view>

#include "core/crypto.h"
#include "core/log.h"
#include "store/blob_store.h"

namespace serveml::store {
namespace {

constexpr size_t kChunk = 1 << 20;  // copy/hash buffer, bytes

Status ErrnoStatus(int err, std::string_view what, const std::string& path) {
  std::string msg = std::string(what) + " " + path + ": " + std::strerror(err);
  if (err == ENOSPC || err == EDQUOT) return Unavailable("disk full: " + msg);
  if (err == EIO) return Unavailable("disk I/O error: " + msg);
  return Internal(msg);
}

// Closes the descriptor on scope exit.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() { Reset(); }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  void Reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }
  // Closes now, reporting errors (a failed close can mean lost written data).
  int Close() {
    int rc = fd_ >= 0 ? ::close(fd_) : 0;
    fd_ = -1;
    return rc;
  }

 private:
  int fd_;
};

Status WriteAll(int fd, const char* p, size_t n, const std::string& path) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, "write", path);
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
  return Status::Ok();
}

// Reads up to n bytes; returns bytes read (0 at EOF) or -1 with errno set.
ssize_t ReadSome(int fd, char* p, size_t n) {
  for (;;) {
    ssize_t r = ::read(fd, p, n);
    if (r < 0 && errno == EINTR) continue;
    return r;
  }
}

Status FsyncPath(const std::string& dir) {
  Fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoStatus(errno, "open directory", dir);
  if (::fsync(fd.get()) != 0) return ErrnoStatus(errno, "fsync directory", dir);
  return Status::Ok();
}

// mkdir that tolerates an existing directory. *created tells whether it made it.
Status MakeDir(const std::string& dir, bool* created) {
  *created = false;
  if (::mkdir(dir.c_str(), 0700) == 0) {
    *created = true;
    return Status::Ok();
  }
  if (errno == EEXIST) {
    struct stat st;
    if (::stat(dir.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) return Status::Ok();
    return Internal(dir + " exists and is not a directory");
  }
  return ErrnoStatus(errno, "mkdir", dir);
}

class LocalBlobStore final : public BlobStore {
 public:
  LocalBlobStore(std::string root, dev_t dev)
      : root_(std::move(root)), tmp_(root_ + "/tmp"), dev_(dev) {}

  Result<std::string> PutFile(const std::string& src_path) override {
    Fd src(::open(src_path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!src.valid()) {
      if (errno == ENOENT) return NotFound("upload file " + src_path + " not found");
      return ErrnoStatus(errno, "open", src_path);
    }
    struct stat st;
    if (::fstat(src.get(), &st) != 0) return ErrnoStatus(errno, "stat", src_path);
    if (!S_ISREG(st.st_mode)) return InvalidInput(src_path + " is not a regular file");

    // Fast path: same filesystem and no other hard links -> hash in place, fsync, rename.
    // (The caller hands the file over; if it kept writing to it, Get's check catches it.)
    if (st.st_dev == dev_ && st.st_nlink == 1) {
      ASSIGN_OR_RETURN(std::string sha, HashFd(src.get(), src_path));
      if (AlreadyStored(sha, st.st_size)) {
        ::unlink(src_path.c_str());
        return sha;
      }
      if (::fchmod(src.get(), 0600) == 0 && ::fsync(src.get()) == 0) {
        RETURN_IF_ERROR(EnsureShardDir(sha));
        if (::rename(src_path.c_str(), FinalPath(sha).c_str()) == 0) {
          RETURN_IF_ERROR(FsyncPath(ShardDir(sha)));
          return sha;
        }
        if (errno != EXDEV) return ErrnoStatus(errno, "rename", src_path);
        // EXDEV: same st_dev but another mount (bind mount); fall back to copying.
      }
      if (::lseek(src.get(), 0, SEEK_SET) != 0) return ErrnoStatus(errno, "seek", src_path);
    }

    // Copy path: stream into a temp file while hashing, then publish it.
    TempFile tmp;
    RETURN_IF_ERROR(tmp.Create(tmp_));
    Sha256 hash;
    std::string buf(kChunk, '\0');
    for (;;) {
      ssize_t r = ReadSome(src.get(), buf.data(), buf.size());
      if (r < 0) return ErrnoStatus(errno, "read", src_path);
      if (r == 0) break;
      hash.Update(buf.data(), static_cast<size_t>(r));
      RETURN_IF_ERROR(WriteAll(tmp.fd.get(), buf.data(), static_cast<size_t>(r), tmp.path));
    }
    std::string sha = hash.FinishHex();
    RETURN_IF_ERROR(Publish(tmp, sha));
    if (::unlink(src_path.c_str()) != 0) {
      LOG_WARN("could not remove stored upload file").Str("path", src_path);
    }
    return sha;
  }

  Result<std::string> PutBytes(const std::string& bytes) override {
    std::string sha = Sha256Hex(bytes);
    if (AlreadyStored(sha, static_cast<off_t>(bytes.size()))) return sha;
    TempFile tmp;
    RETURN_IF_ERROR(tmp.Create(tmp_));
    RETURN_IF_ERROR(WriteAll(tmp.fd.get(), bytes.data(), bytes.size(), tmp.path));
    RETURN_IF_ERROR(Publish(tmp, sha));
    return sha;
  }

  Result<std::string> Get(const std::string& sha256) override {
    RETURN_IF_ERROR(CheckName(sha256));
    const std::string path = FinalPath(sha256);
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) {
      if (errno == ENOENT) return NotFound("blob " + sha256 + " not found");
      return ErrnoStatus(errno, "open", path);
    }
    struct stat st;
    if (::fstat(fd.get(), &st) != 0) return ErrnoStatus(errno, "stat", path);
    std::string out;
    out.reserve(static_cast<size_t>(st.st_size));
    std::string buf(kChunk, '\0');
    Sha256 hash;
    for (;;) {
      ssize_t r = ReadSome(fd.get(), buf.data(), buf.size());
      if (r < 0) return ErrnoStatus(errno, "read", path);
      if (r == 0) break;
      hash.Update(buf.data(), static_cast<size_t>(r));
      out.append(buf.data(), static_cast<size_t>(r));
    }
    if (hash.FinishHex() != sha256) {
      LOG_ERROR("blob corrupt: content does not match its name").Str("path", path);
      return Internal("blob " + sha256 + " is corrupt (content hash mismatch)");
    }
    return out;
  }

  Result<int> OpenForRead(const std::string& sha256) override {
    RETURN_IF_ERROR(CheckName(sha256));
    const std::string path = FinalPath(sha256);
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      if (errno == ENOENT) return NotFound("blob " + sha256 + " not found");
      return ErrnoStatus(errno, "open", path);
    }
    return fd;
  }

  Result<bool> Exists(const std::string& sha256) override {
    RETURN_IF_ERROR(CheckName(sha256));
    struct stat st;
    if (::stat(FinalPath(sha256).c_str(), &st) == 0) return S_ISREG(st.st_mode);
    if (errno == ENOENT) return false;
    return ErrnoStatus(errno, "stat", FinalPath(sha256));
  }

  Status Remove(const std::string& sha256) override {
    RETURN_IF_ERROR(CheckName(sha256));
    const std::string path = FinalPath(sha256);
    if (::unlink(path.c_str()) != 0) {
      if (errno == ENOENT) return NotFound("blob " + sha256 + " not found");
      return ErrnoStatus(errno, "unlink", path);
    }
    return FsyncPath(ShardDir(sha256));
  }

  std::string temp_dir() const override { return tmp_; }

 private:
  // A uniquely named file in root/tmp, unlinked on destruction unless published.
  struct TempFile {
    std::string path;
    Fd fd;
    ~TempFile() {
      fd.Reset();
      if (!path.empty()) ::unlink(path.c_str());
    }
    Status Create(const std::string& dir) {
      for (int attempt = 0; attempt < 4; ++attempt) {
        std::string p = dir + "/" + RandomHex(16) + ".part";
        int f = ::open(p.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (f >= 0) {
          path = std::move(p);
          fd.Reset(f);
          return Status::Ok();
        }
        if (errno != EEXIST) return ErrnoStatus(errno, "create temp file in", dir);
      }
      return Internal("could not create a unique temp file in " + dir);
    }
  };

  static Status CheckName(const std::string& sha256) {
    if (!IsValidBlobName(sha256)) {
      return InvalidInput("invalid blob name (want 64 lower-case hex characters)");
    }
    return Status::Ok();
  }

  std::string ShardDir(const std::string& sha) const { return root_ + "/" + sha.substr(0, 2); }
  std::string FinalPath(const std::string& sha) const { return ShardDir(sha) + "/" + sha; }

  // True if the blob is already present with the expected size (dedup). A present file of
  // the wrong size is a damaged copy and gets replaced by the new one.
  bool AlreadyStored(const std::string& sha, off_t size) const {
    struct stat st;
    return ::stat(FinalPath(sha).c_str(), &st) == 0 && S_ISREG(st.st_mode) && st.st_size == size;
  }

  Status EnsureShardDir(const std::string& sha) {
    bool created = false;
    RETURN_IF_ERROR(MakeDir(ShardDir(sha), &created));
    if (created) RETURN_IF_ERROR(FsyncPath(root_));  // make the new directory entry durable
    return Status::Ok();
  }

  // fsync the temp file, rename it to its final name, fsync the directory.
  Status Publish(TempFile& tmp, const std::string& sha) {
    if (::fsync(tmp.fd.get()) != 0) return ErrnoStatus(errno, "fsync", tmp.path);
    if (tmp.fd.Close() != 0) return ErrnoStatus(errno, "close", tmp.path);
    RETURN_IF_ERROR(EnsureShardDir(sha));
    const std::string final_path = FinalPath(sha);
    if (::rename(tmp.path.c_str(), final_path.c_str()) != 0) {
      return ErrnoStatus(errno, "rename to", final_path);
    }
    tmp.path.clear();  // published: nothing to unlink
    return FsyncPath(ShardDir(sha));
  }

  static Result<std::string> HashFd(int fd, const std::string& path) {
    Sha256 hash;
    std::string buf(kChunk, '\0');
    for (;;) {
      ssize_t r = ReadSome(fd, buf.data(), buf.size());
      if (r < 0) return ErrnoStatus(errno, "read", path);
      if (r == 0) break;
      hash.Update(buf.data(), static_cast<size_t>(r));
    }
    return hash.FinishHex();
  }

  const std::string root_;
  const std::string tmp_;
  const dev_t dev_;
};

// Removes every entry of root/tmp (leftovers of writes interrupted by a crash).
Status ClearTempDir(const std::string& tmp) {
  DIR* dir = ::opendir(tmp.c_str());
  if (dir == nullptr) return ErrnoStatus(errno, "open", tmp);
  int removed = 0;
  while (struct dirent* e = ::readdir(dir)) {
    std::string_view name = e->d_name;
    if (name == "." || name == "..") continue;
    std::string p = tmp + "/" + std::string(name);
    if (::unlink(p.c_str()) == 0) {
      ++removed;
    } else {
      LOG_WARN("could not remove stale temp file")
          .Str("path", p)
          .Str("error", std::strerror(errno));
    }
  }
  ::closedir(dir);
  if (removed > 0) LOG_INFO("removed stale blob temp files").Int("count", removed).Str("dir", tmp);
  return Status::Ok();
}

}  // namespace

Result<std::unique_ptr<BlobStore>> OpenLocalBlobStore(const std::string& root_in) {
  if (root_in.empty()) return InvalidInput("blob store root is empty");
  InitCrypto();
  std::string root = root_in;
  while (root.size() > 1 && root.back() == '/') root.pop_back();
  std::error_code ec;
  std::filesystem::create_directories(root, ec);
  if (ec) return Unavailable("cannot create blob store root " + root + ": " + ec.message());
  bool created = false;
  RETURN_IF_ERROR(MakeDir(root + "/tmp", &created));
  RETURN_IF_ERROR(ClearTempDir(root + "/tmp"));
  struct stat st;
  if (::stat(root.c_str(), &st) != 0) return ErrnoStatus(errno, "stat", root);
  return std::unique_ptr<BlobStore>(new LocalBlobStore(root, st.st_dev));
}

}  // namespace serveml::store
