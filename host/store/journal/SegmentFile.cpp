#include "store/journal/SegmentFile.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

namespace clayhook::journal {

std::optional<SegmentFile> read_segment_file(const std::string& path, std::string& error) {
    error.clear();
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno != ENOENT)
            error = "cannot read " + path + ": " + std::generic_category().message(errno);
        return std::nullopt;
    }
    SegmentFile f;
    struct stat st {};
    int err = ::fstat(fd, &st) == 0 ? 0 : errno;
    if (err == 0) {
        f.dev = st.st_dev;
        f.ino = st.st_ino;
        f.bytes.resize(static_cast<size_t>(st.st_size) + 65536);  // room to grow meanwhile
    }
    size_t got = 0;
    while (err == 0) {
        if (got == f.bytes.size()) f.bytes.resize(f.bytes.size() * 2);
        const ssize_t n = ::read(fd, f.bytes.data() + got, f.bytes.size() - got);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) err = errno;
        if (n <= 0) break;
        got += static_cast<size_t>(n);
    }
    ::close(fd);
    if (err != 0) {
        error = "cannot read " + path + ": " + std::generic_category().message(err);
        return std::nullopt;
    }
    f.bytes.resize(got);
    return f;
}

}  // namespace clayhook::journal
