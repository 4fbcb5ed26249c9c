#include "store/journal/SpareSegment.h"

#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <system_error>

namespace clayhook::journal {

namespace {

std::string errno_text(int err) {
    return std::error_code(err, std::generic_category()).message();
}

}  // namespace

SpareSegment::SpareSegment(std::string dir, uint64_t bytes,
                           std::function<void(const std::string&)> warn,
                           std::function<bool(uint64_t)> room_for)
    : dir_(std::move(dir)),
      tmp_path_(dir_ + "/spare.tmp"),
      ready_path_(dir_ + "/spare.seg"),
      bytes_(bytes),
      warn_(std::move(warn)),
      room_for_(std::move(room_for)) {
    remove();
    thread_ = std::thread([this] { run(); });
}

SpareSegment::~SpareSegment() {
    stop();
}

void SpareSegment::stop() {
    {
        std::lock_guard lk(mu_);
        stopping_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
}

bool SpareSegment::is_spare_name(const std::string& name) {
    return name == "spare.tmp" || name == "spare.seg";
}

bool SpareSegment::want() {
    {
        std::lock_guard lk(mu_);
        if (wanted_ || ready_ || renaming_ || failed_) return false;
        wanted_ = true;
    }
    cv_.notify_one();
    return true;
}

bool SpareSegment::ready() const {
    std::lock_guard lk(mu_);
    return ready_;
}

bool SpareSegment::failed() const {
    std::lock_guard lk(mu_);
    return failed_;
}

int SpareSegment::take(const std::string& path) {
    {
        std::lock_guard lk(mu_);
        failed_ = false;  // a new segment: one more try at its spare
        if (!ready_ || renaming_) return -1;
        ready_ = false;
        renaming_ = true;  // an offer() meanwhile would rename onto spare.seg
    }
    const int err = ::rename(ready_path_.c_str(), path.c_str()) == 0 ? 0 : errno;
    // A spare that would not move goes, before an offer() may put another
    // file under its name.
    if (err != 0) ::unlink(ready_path_.c_str());
    {
        std::lock_guard lk(mu_);
        renaming_ = false;
    }
    if (err != 0) {
        if (warn_) warn_("journal: cannot rename " + ready_path_ + ": " + errno_text(err));
        return -1;
    }
    const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0 && warn_) warn_("journal: cannot open " + path + ": " + errno_text(errno));
    return fd;
}

bool SpareSegment::offer(const std::string& path) {
    {
        std::lock_guard lk(mu_);
        if (wanted_ || ready_ || renaming_ || stopping_) return false;
        renaming_ = true;  // want(), take() and other offers wait their turn meanwhile
    }
    // Outside mu_: a rename can wait for the filesystem's journal, and the
    // syncer calls want() after each pass.
    struct stat st {};
    const bool ok = ::stat(path.c_str(), &st) == 0 &&
                    static_cast<uint64_t>(st.st_size) >= min_reuse_bytes() &&
                    ::rename(path.c_str(), ready_path_.c_str()) == 0;
    std::lock_guard lk(mu_);
    renaming_ = false;
    ready_ = ok;
    return ok;
}

void SpareSegment::remove() {
    ::unlink(tmp_path_.c_str());
    ::unlink(ready_path_.c_str());
}

void SpareSegment::run() {
    pthread_setname_np(pthread_self(), "journal-spare");  // for top -H, perf and gdb
    std::unique_lock lk(mu_);
    for (;;) {
        cv_.wait(lk, [&] { return stopping_ || wanted_; });
        if (stopping_) return;
        lk.unlock();
        const bool ok = prepare();
        lk.lock();
        wanted_ = false;
        ready_ = ok;
        failed_ = !ok;
    }
}

bool SpareSegment::prepare() {
    if (room_for_ && !room_for_(bytes_)) {
        if (warn_)
            warn_("journal: the next segment is not prepared: " + std::to_string(bytes_) +
                  " bytes of zeros do not fit on the filesystem above store.min_free_space; "
                  "it is created when needed, and appended to");
        return false;
    }
    const int fd = ::open(tmp_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    std::string error;
    if (fd < 0) {
        error = "create " + tmp_path_ + ": " + errno_text(errno);
    } else {
        // In 1 MiB writes, synced every 8 MiB: little dirty data waits at any
        // time for the next filesystem commit (which the segment in use may
        // have to wait for meanwhile).
        const std::string zeros(1u << 20, '\0');
        uint64_t done = 0, synced = 0;
        while (done < bytes_ && error.empty()) {
            {
                std::lock_guard lk(mu_);
                if (stopping_) error = "stopping";
            }
            if (!error.empty()) break;
            const size_t n = static_cast<size_t>(std::min<uint64_t>(zeros.size(), bytes_ - done));
            const ssize_t w = ::pwrite(fd, zeros.data(), n, static_cast<off_t>(done));
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) {
                error = "write " + tmp_path_ + ": " + errno_text(w < 0 ? errno : ENOSPC);
                break;
            }
            done += static_cast<uint64_t>(w);
            if (done - synced >= (8u << 20) || done == bytes_) {
                if (::fdatasync(fd) != 0)
                    error = "fdatasync " + tmp_path_ + ": " + errno_text(errno);
                synced = done;
            }
        }
        ::close(fd);
        if (error.empty() && ::rename(tmp_path_.c_str(), ready_path_.c_str()) != 0)
            error = "rename " + tmp_path_ + ": " + errno_text(errno);
    }
    if (error.empty()) return true;
    ::unlink(tmp_path_.c_str());
    // Not a failure of the journal: the next segment is created when
    // needed, and appended to.
    if (error != "stopping" && warn_)
        warn_("journal: cannot prepare the next segment (" + error +
              "); the next one is created when needed");
    return false;
}

}  // namespace clayhook::journal
