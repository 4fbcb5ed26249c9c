#include "atomic_file.hpp"

#include "outcome.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace clayhook::exportdl {

namespace fs = std::filesystem;

std::string errno_text() {
    return std::strerror(errno);
}

void fsync_dir(const fs::path& dir) {
    int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) try_later("cannot open " + dir.string() + " to sync it: " + errno_text());
    int rc = ::fsync(fd);
    int saved = errno;
    ::close(fd);
    if (rc != 0) try_later("fsync of " + dir.string() + " failed: " + std::strerror(saved));
}

TempFile::TempFile(const fs::path& dir, const std::string& name) {
    std::string t = (dir / ("." + name + ".part-XXXXXX")).string();
    fd_ = ::mkostemp(t.data(), O_CLOEXEC);
    if (fd_ < 0)
        try_later("cannot create a temporary file in " + dir.string() + ": " + errno_text());
    path_ = t;
    ::fchmod(fd_, 0640);
}

TempFile::~TempFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!path_.empty()) ::unlink(path_.c_str());
}

void TempFile::write(const char* p, size_t n) {
    while (n > 0) {
        ssize_t w = ::write(fd_, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) try_later("writing " + path_ + " failed: " + errno_text());
        p += w;
        n -= static_cast<size_t>(w);
    }
}

void TempFile::finish() {
    if (::fsync(fd_) != 0) try_later("fsync of " + path_ + " failed: " + errno_text());
    int rc = ::close(fd_);
    fd_ = -1;
    if (rc != 0) try_later("closing " + path_ + " failed: " + errno_text());
}

void TempFile::rename_to(const fs::path& target) {
    if (::rename(path_.c_str(), target.c_str()) != 0)
        try_later("renaming " + path_ + " to " + target.string() + " failed: " + errno_text());
    path_.clear();
}

std::string clean_name_part(std::string_view s, bool& changed) {
    std::string out;
    for (char c : s) {
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-';
        out += ok ? c : '_';
        changed = changed || !ok;
    }
    return out;
}

}  // namespace clayhook::exportdl
