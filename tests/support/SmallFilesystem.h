#pragma once

// A tmpfs of `size` mounted at `dir` for the object's lifetime: a genuinely
// small filesystem to fill. Mounting needs CAP_SYS_ADMIN (root, as CI
// runs): without it the test fails and says so.

#include <sys/mount.h>

#include <catch2/catch.hpp>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>

namespace clayhook::test {

class SmallFilesystem {
  public:
    SmallFilesystem(const std::string& dir, const std::string& size) : dir_(dir) {
        std::filesystem::create_directories(dir_);
        const std::string opts = "size=" + size + ",mode=0700";
        if (::mount("tmpfs", dir_.c_str(), "tmpfs", 0, opts.c_str()) != 0)
            FAIL("cannot mount a " << size << " tmpfs at " << dir_ << ": " << std::strerror(errno)
                                   << " (this test needs CAP_SYS_ADMIN: run the suite as root, "
                                      "as CI does)");
    }
    ~SmallFilesystem() { ::umount2(dir_.c_str(), MNT_DETACH); }
    SmallFilesystem(const SmallFilesystem&) = delete;
    SmallFilesystem& operator=(const SmallFilesystem&) = delete;

  private:
    std::string dir_;
};

}  // namespace clayhook::test
