#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "core/crypto.h"
#include "core/log.h"
#include "store/blob_store.h"

namespace serveml::store {
namespace {

namespace fs = std::filesystem;

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void WriteFile(const std::string& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << data;
}

std::vector<std::string> ListDir(const std::string& dir) {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) names.push_back(e.path().filename());
  return names;
}

class LocalBlobStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(InitCrypto());
    log::SetLevel(log::Level::kError);
    std::string tmpl = (fs::temp_directory_path() / "serveml-blob-XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    root_ = dir_ + "/blobs";
    Reopen();
  }
  void TearDown() override {
    store_.reset();
    log::SetLevel(log::Level::kInfo);
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  void Reopen() {
    store_.reset();
    auto r = OpenLocalBlobStore(root_);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    store_ = std::move(r).value();
  }
  std::string FinalPath(const std::string& sha) {
    return root_ + "/" + sha.substr(0, 2) + "/" + sha;
  }

  std::string dir_;
  std::string root_;
  std::unique_ptr<BlobStore> store_;
};

TEST_F(LocalBlobStoreTest, PutBytesGetRoundTrip) {
  const std::string data = "model bytes \x00\x01\x02 end";
  auto sha = store_->PutBytes(data);
  ASSERT_TRUE(sha.ok()) << sha.status().ToString();
  EXPECT_EQ(*sha, Sha256Hex(data));
  EXPECT_TRUE(fs::exists(FinalPath(*sha)));
  EXPECT_TRUE(*store_->Exists(*sha));
  auto got = store_->Get(*sha);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(*got, data);

  // Same bytes again: same name, one file.
  auto again = store_->PutBytes(data);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, *sha);
  EXPECT_EQ(ListDir(root_ + "/" + sha->substr(0, 2)).size(), 1u);
  EXPECT_TRUE(ListDir(store_->temp_dir()).empty());
}

TEST_F(LocalBlobStoreTest, EmptyAndLargeBlobs) {
  auto empty = store_->PutBytes("");
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(*store_->Get(*empty), "");

  std::string big(3 * (1 << 20) + 17, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 131 + 7);
  auto sha = store_->PutBytes(big);
  ASSERT_TRUE(sha.ok());
  EXPECT_EQ(*store_->Get(*sha), big);
}

TEST_F(LocalBlobStoreTest, PutFileFromTempDirMovesIt) {
  const std::string src = store_->temp_dir() + "/upload-1";
  const std::string data(100000, 'q');
  WriteFile(src, data);
  auto sha = store_->PutFile(src);
  ASSERT_TRUE(sha.ok()) << sha.status().ToString();
  EXPECT_EQ(*sha, Sha256Hex(data));
  EXPECT_FALSE(fs::exists(src));  // consumed
  EXPECT_EQ(*store_->Get(*sha), data);
  struct stat st;
  ASSERT_EQ(stat(FinalPath(*sha).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 077, 0u);

  // Duplicate content: source consumed, blob unchanged.
  WriteFile(src, data);
  auto again = store_->PutFile(src);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, *sha);
  EXPECT_FALSE(fs::exists(src));
}

TEST_F(LocalBlobStoreTest, PutFileWithOtherHardLinkIsCopied) {
  const std::string src = dir_ + "/upload";
  const std::string other = dir_ + "/other-link";
  WriteFile(src, "linked content");
  ASSERT_EQ(link(src.c_str(), other.c_str()), 0);
  auto sha = store_->PutFile(src);
  ASSERT_TRUE(sha.ok());
  // The stored blob is its own inode: writing through the other link cannot change it.
  WriteFile(other, "changed!");
  EXPECT_EQ(*store_->Get(*sha), "linked content");
}

TEST_F(LocalBlobStoreTest, PutFileErrors) {
  EXPECT_EQ(store_->PutFile(dir_ + "/missing").status().code(), Code::kNotFound);
  EXPECT_EQ(store_->PutFile(dir_).status().code(), Code::kInvalidInput);
}

TEST_F(LocalBlobStoreTest, MissingBlob) {
  const std::string sha = Sha256Hex("never stored");
  EXPECT_EQ(store_->Get(sha).status().code(), Code::kNotFound);
  EXPECT_FALSE(*store_->Exists(sha));
  EXPECT_EQ(store_->Remove(sha).code(), Code::kNotFound);
}

TEST_F(LocalBlobStoreTest, Remove) {
  auto sha = store_->PutBytes("to delete");
  ASSERT_TRUE(sha.ok());
  ASSERT_TRUE(store_->Remove(*sha).ok());
  EXPECT_FALSE(*store_->Exists(*sha));
  EXPECT_EQ(store_->Get(*sha).status().code(), Code::kNotFound);
}

TEST_F(LocalBlobStoreTest, CorruptionIsDetected) {
  auto sha = store_->PutBytes("precious model weights");
  ASSERT_TRUE(sha.ok());
  const std::string path = FinalPath(*sha);
  std::string bytes = ReadAll(path);
  bytes[5] ^= 0x01;  // flip one bit on disk
  chmod(path.c_str(), 0600);
  WriteFile(path, bytes);
  auto got = store_->Get(*sha);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), Code::kInternal);
  EXPECT_NE(got.status().message().find("corrupt"), std::string::npos);

  // Truncation too; and storing the bytes again repairs the damaged copy.
  WriteFile(path, "precious");
  EXPECT_EQ(store_->Get(*sha).status().code(), Code::kInternal);
  ASSERT_TRUE(store_->PutBytes("precious model weights").ok());
  EXPECT_EQ(*store_->Get(*sha), "precious model weights");
}

TEST_F(LocalBlobStoreTest, BadNamesAreRejected) {
  const std::string good = Sha256Hex("x");
  const std::vector<std::string> bad = {
      "",
      "abc",
      "../../etc/passwd",
      good.substr(0, 63),
      good + "0",
      std::string(64, 'A'),         // upper case
      std::string(62, 'a') + "/.",  // path characters
      "../" + good.substr(3),
      std::string(63, 'a') + std::string(1, '\0'),
  };
  for (const std::string& name : bad) {
    EXPECT_FALSE(IsValidBlobName(name)) << name;
    EXPECT_EQ(store_->Get(name).status().code(), Code::kInvalidInput) << name;
    EXPECT_EQ(store_->Exists(name).status().code(), Code::kInvalidInput) << name;
    EXPECT_EQ(store_->Remove(name).code(), Code::kInvalidInput) << name;
  }
  EXPECT_TRUE(IsValidBlobName(good));
}

TEST_F(LocalBlobStoreTest, StaleTempFilesAreClearedAtOpen) {
  WriteFile(store_->temp_dir() + "/deadbeef.part", "half a blob");
  WriteFile(store_->temp_dir() + "/upload-123", "interrupted upload");
  auto sha = store_->PutBytes("kept");
  ASSERT_TRUE(sha.ok());
  Reopen();
  EXPECT_TRUE(ListDir(store_->temp_dir()).empty());
  EXPECT_EQ(*store_->Get(*sha), "kept");  // complete blobs untouched
}

// A partially written blob lives only in tmp/ under a random name: it is never visible
// under a final name, and a reopen (what a restart after a crash does) removes it.
TEST_F(LocalBlobStoreTest, PartialWriteIsNeverVisibleUnderFinalName) {
  const std::string data(1 << 20, 'z');
  const std::string sha = Sha256Hex(data);
  WriteFile(store_->temp_dir() + "/0123456789abcdef.part", data.substr(0, 1000));
  EXPECT_FALSE(*store_->Exists(sha));
  EXPECT_EQ(store_->Get(sha).status().code(), Code::kNotFound);
  Reopen();
  EXPECT_TRUE(ListDir(store_->temp_dir()).empty());
  EXPECT_FALSE(*store_->Exists(sha));
}

// Kill a writer process at random points: every blob under a final name must be complete.
TEST_F(LocalBlobStoreTest, KilledWriterLeavesOnlyCompleteBlobs) {
  for (int round = 0; round < 3; ++round) {
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      auto r = OpenLocalBlobStore(root_);
      if (!r.ok()) _exit(2);
      std::string data(4 << 20, '\0');
      for (int i = 0;; ++i) {
        for (size_t j = 0; j < data.size(); j += 4096) data[j] = static_cast<char>(i + j);
        (void)(*r)->PutBytes(data);
      }
    }
    // Wait until the writer has published at least one blob, then kill it mid-stream.
    auto blob_count = [&] {
      size_t n = 0;
      std::error_code ec;
      for (const auto& shard : fs::directory_iterator(root_, ec)) {
        if (shard.path().filename() != "tmp") n += ListDir(shard.path()).size();
      }
      return n;
    };
    const size_t before = blob_count();
    for (int i = 0; i < 400 && blob_count() == before; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(7 * round + 3));
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    Reopen();
    EXPECT_TRUE(ListDir(store_->temp_dir()).empty());
    for (const auto& shard : fs::directory_iterator(root_)) {
      if (shard.path().filename() == "tmp") continue;
      for (const auto& blob : fs::directory_iterator(shard.path())) {
        const std::string name = blob.path().filename();
        ASSERT_TRUE(IsValidBlobName(name)) << name;
        EXPECT_TRUE(store_->Get(name).ok()) << name;
      }
    }
    EXPECT_GT(blob_count(), before) << "the writer never published a blob";
  }
}

TEST_F(LocalBlobStoreTest, ConcurrentPutsAndGets) {
  constexpr int kThreads = 8;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 20; ++i) {
        // Half the content is shared between threads (dedup under contention).
        std::string data = (i % 2 == 0) ? "shared-" + std::to_string(i)
                                        : "t" + std::to_string(t) + "-" + std::to_string(i);
        data += std::string(10000 + i, 'a' + (i % 26));
        auto sha = store_->PutBytes(data);
        if (!sha.ok()) {
          ++failures;
          continue;
        }
        auto got = store_->Get(*sha);
        if (!got.ok() || *got != data) ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_TRUE(ListDir(store_->temp_dir()).empty());
}

TEST_F(LocalBlobStoreTest, OpenCreatesNestedRoot) {
  auto r = OpenLocalBlobStore(dir_ + "/a/b/c/");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(fs::is_directory(dir_ + "/a/b/c/tmp"));
  EXPECT_EQ((*r)->temp_dir(), dir_ + "/a/b/c/tmp");
}

}  // namespace
}  // namespace serveml::store
