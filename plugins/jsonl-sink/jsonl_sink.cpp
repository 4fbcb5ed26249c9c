// jsonl-sink: appends every event it receives to a file, one JSON object per
// line. The example plugin that docs/writing-plugins.md walks through; its own
// page, with rotation in full, is docs/plugins/jsonl-sink.md.
//
// One record, one line, whatever the body holds: the body is parsed and
// written back as compact JSON (a body that is not JSON goes in as a JSON
// string), never copied raw, so a newline in a body cannot end a record
// early or plant a forged one.
//
// config (declared in JsonlSink::config, checked by the host first: any
// other key is refused there, by name, with the nearest one suggested):
//   path:         file to append to (required); its folder is created if missing
//   fsync:        true to fdatasync after every write, one per batch, and to
//                 fsync the folder after a rotation (default false)
//   max_bytes:    rotate before a batch that would take the file past this
//                 size: 65536, "512KiB", "64MiB", "1GB" (KB/KiB, MB/MiB,
//                 GB/GiB: all 1024-based), 1KiB to 1024GiB (default: no
//                 limit)
//   rotate_every: rotate once the file's first line is this old: "500ms",
//                 "30s", "15m", "1h", "1d" (in the YAML a bare number is
//                 seconds), 100ms to ten years (default: never)
//   keep:         how many rotated files to keep, the oldest deleted beyond
//                 that; 0 keeps them all (default 10; any other value only
//                 with max_bytes or rotate_every)
// The host hands sizes over as integer bytes and durations as integer
// milliseconds (ABI 1.1); a string is read by plugins/common/units.hpp, the
// host's own syntax, as in clayhook.yaml.
//
// Rotation (only when max_bytes or rotate_every is set) renames
// events.jsonl to events-20261205T190102Z-1.jsonl (the UTC second of the
// rotation, then 1 + the highest sequence number already used in that
// second) and opens a fresh events.jsonl (mode 0640). It happens under the
// mutex, before a batch is written: a batch is one write() into one file,
// never split, so a batch larger than max_bytes on its own still goes whole
// into a file (a fresh one, unless the current one is empty). With
// rotate_every, a thread of its own also rotates a file that has gone quiet,
// once this instance has written into it. A rotation that fails leaves the
// file as it is and answers the batch retry (logged as a warning), so no
// event is lost. Only regular files named like that
// (events-YYYYMMDDTHHMMSSZ-<n>.jsonl) are ever deleted.
#include <clayhook/plugin.hpp>

#include "../common/units.hpp"  // the host's syntax for sizes and durations

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <mutex>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// The config: what the keys say, checked. Throws std::runtime_error naming
// the key for anything it does not take. (Unknown keys, and values of the
// wrong type, the host has refused already against JsonlSink::config.)
struct SinkConfig {
    static constexpr size_t kDefaultKeep = 10;  // JsonlSink::config declares it as "10"

    std::string path;
    bool fsync = false;
    uint64_t max_bytes = 0;      // 0: no size limit
    milliseconds every{0};       // 0: no age limit
    size_t keep = kDefaultKeep;  // 0: keep every rotated file

    static constexpr uint64_t kMinBytes = 1024;
    static constexpr uint64_t kMaxBytes = 1ULL << 40;
    static constexpr milliseconds kMinEvery{100};
    static constexpr milliseconds kMaxEvery{10LL * 366 * 86'400'000};
    static constexpr int64_t kMaxKeep = 100'000;

    explicit SinkConfig(const clayhook::json::Value& config) {
        if (!config.is_object()) throw std::runtime_error("config: expected a mapping");
        if (const auto* v = config.find("path"); v != nullptr && !v->is_null()) {
            if (!v->is_string()) refuse("path", "must be a string, found " + shown(*v));
            path = v->as_string();
        }
        if (path.empty()) throw std::runtime_error("config: 'path' is required");
        if (const auto* v = config.find("fsync")) {
            if (!v->is_bool()) refuse("fsync", "must be true or false, found " + shown(*v));
            fsync = v->as_bool();
        }
        if (const auto* v = config.find("max_bytes")) max_bytes = size_of(*v);
        if (const auto* v = config.find("rotate_every")) every = duration_of(*v);
        // The host fills in the declared default, 10, when `keep` is not
        // written: any other value asks for something that only rotation
        // does.
        if (const auto* v = config.find("keep")) {
            keep = keep_of(*v);
            if (keep != kDefaultKeep && max_bytes == 0 && every.count() == 0)
                refuse("keep", "only means something with max_bytes or rotate_every");
        }
    }

    bool rotating() const { return max_bytes != 0 || every.count() != 0; }

  private:
    [[noreturn]] static void refuse(std::string_view key, const std::string& why) {
        throw std::runtime_error("config: '" + std::string(key) + "' " + why);
    }

    static std::string shown(const clayhook::json::Value& v) {
        return v.is_string() ? "'" + v.as_string() + "'" : clayhook::json::dump(v);
    }

    static std::optional<int64_t> whole(const clayhook::json::Value& v) {
        try {
            return v.as_int64();
        } catch (const clayhook::json::TypeError&) {
            return std::nullopt;
        }
    }

    // "64MiB" as {64, "MiB"}: digits, then whatever follows them.
    static std::optional<std::pair<uint64_t, std::string>> split(const std::string& s) {
        size_t i = 0;
        while (i < s.size() && s[i] >= '0' && s[i] <= '9')
            ++i;
        if (i == 0 || i > 15) return std::nullopt;
        return std::make_pair(std::stoull(s.substr(0, i)), s.substr(i));
    }

    static uint64_t size_of(const clayhook::json::Value& v) {
        const char* key = "max_bytes";
        const std::string range = " (1KiB to 1024GiB), found " + shown(v);
        uint64_t bytes = 0;
        if (v.is_number()) {
            auto n = whole(v);
            if (!n) refuse(key, "must be a whole number of bytes, found " + shown(v));
            if (*n < 0) refuse(key, "must not be negative, found " + shown(v));
            bytes = static_cast<uint64_t>(*n);
        } else if (v.is_string()) {
            const std::string& s = v.as_string();
            if (!s.empty() && s[0] == '-') refuse(key, "must not be negative, found " + shown(v));
            auto p = clayhook_plugins::units::parse_size(s, kMaxBytes);
            using Problem = clayhook_plugins::units::Problem;
            if (p.problem == Problem::unknown_unit)
                refuse(key, "has an unknown unit '" + p.unit + "' in " + shown(v) +
                                " (B, KB/KiB, MB/MiB, GB/GiB; all 1024-based)");
            if (p.problem == Problem::too_large) refuse(key, "is too large" + range);
            if (!p) refuse(key, "expected a size like 65536, 512KiB or 64MiB, found " + shown(v));
            bytes = *p.value;
        } else {
            refuse(key, "expected a size like 65536, 512KiB or 64MiB, found " + shown(v));
        }
        if (bytes < kMinBytes) refuse(key, "is too small" + range);
        if (bytes > kMaxBytes) refuse(key, "is too large" + range);
        return bytes;
    }

    // A duration: an integer is milliseconds (the host turns the YAML's
    // "30s", or a bare 30 = seconds, into 30000), a string the host's syntax.
    static milliseconds duration_of(const clayhook::json::Value& v) {
        const char* key = "rotate_every";
        std::string range = " (100ms to ten years), found " + shown(v);
        milliseconds ms{0};
        if (v.is_number()) {
            auto n = whole(v);
            if (!n)
                refuse(key,
                       "must be a whole number of milliseconds or a duration like 30s, found " +
                           shown(v));
            if (*n < 0) refuse(key, "must not be negative, found " + shown(v));
            if (*n > kMaxEvery.count()) refuse(key, "is too long" + range);
            ms = milliseconds(*n);
            range = " (100ms to ten years), found " + clayhook_plugins::units::format_duration(ms);
        } else if (v.is_string()) {
            const std::string& s = v.as_string();
            if (!s.empty() && s[0] == '-') refuse(key, "must not be negative, found " + shown(v));
            auto p = clayhook_plugins::units::parse_duration(s);
            using Problem = clayhook_plugins::units::Problem;
            if (p.problem == Problem::unknown_unit)
                refuse(key,
                       "has an unknown unit '" + p.unit + "' in " + shown(v) + " (ms, s, m, h, d)");
            if (p.problem == Problem::too_large) refuse(key, "is too long" + range);
            if (!p)
                refuse(key,
                       "expected a duration like 500ms, 30s, 15m, 1h or 1d, found " + shown(v));
            ms = *p.value;
        } else {
            refuse(key, "expected a duration like 500ms, 30s, 15m, 1h or 1d, found " + shown(v));
        }
        if (ms < kMinEvery) refuse(key, "is too short" + range);
        if (ms > kMaxEvery) refuse(key, "is too long" + range);
        return ms;
    }

    static size_t keep_of(const clayhook::json::Value& v) {
        std::optional<int64_t> n;
        if (v.is_number()) {
            n = whole(v);
        } else if (v.is_string()) {
            auto amount = split(v.as_string());
            if (amount && amount->second.empty()) n = static_cast<int64_t>(amount->first);
        }
        if (!n) refuse("keep", "must be a whole number (0 keeps every file), found " + shown(v));
        if (*n < 0 || *n > kMaxKeep)
            refuse("keep", "must be between 0 (keep every file) and " + std::to_string(kMaxKeep) +
                               ", found " + shown(v));
        return static_cast<size_t>(*n);
    }
};

}  // namespace

class JsonlSink {
  public:
    static constexpr const char* name = "jsonl-sink";
    static constexpr const char* version = "1.0.0";
    static constexpr const char* description = "appends every event to a JSON-lines file";
    static constexpr const char* events[] = {"*"};
    static constexpr uint32_t max_batch_size = 256;
    // `keep` defaults to 10 (SinkConfig::kDefaultKeep), which is also what
    // the host hands over when the entry leaves it out; another value
    // without max_bytes or rotate_every is refused.
    static constexpr clayhook::ConfigKey config[] = {
        clayhook::config::required(
            clayhook::ConfigType::string, "path",
            "The file to append to; its folder is created when missing, the file with mode 0640."),
        clayhook::config::optional(clayhook::ConfigType::boolean, "fsync", "false",
                                   "`true`: fdatasync each batch before it is answered, and fsync "
                                   "the folder after a rotation."),
        clayhook::config::optional(clayhook::ConfigType::size, "max_bytes", nullptr,
                                   "Rotate before a batch that would take the file past this "
                                   "size, 1KiB to 1024GiB. Not set: no size limit."),
        clayhook::config::optional(clayhook::ConfigType::duration, "rotate_every", nullptr,
                                   "Rotate once the file's first line is this old, 100ms to ten "
                                   "years. Not set: no age limit."),
        clayhook::config::optional(clayhook::ConfigType::integer, "keep", "10",
                                   "Rotated files kept, the oldest beyond deleted: 0 to 100000, "
                                   "0 keeps all. A value other than 10 only with max_bytes or "
                                   "rotate_every."),
    };

    JsonlSink(clayhook::Host& host, const clayhook::json::Value& cfg) : host_(host), config_(cfg) {
        const std::filesystem::path p(config_.path);
        dir_ = p.parent_path().empty() ? "." : p.parent_path().string();
        stem_ = p.stem().string();
        ext_ = p.extension().string();
        if (config_.rotating()) {
            // The longest rotated name: "-YYYYMMDDTHHMMSSZ-" and a sequence
            // number of up to 10 digits; 255 is NAME_MAX on Linux filesystems.
            if (stem_.size() + ext_.size() + 28 > 255)
                throw std::runtime_error("config: 'path' has a file name too long to add " +
                                         std::string("a rotation's time and number to (") +
                                         p.filename().string() + ")");
            struct stat st {};
            if (::lstat(config_.path.c_str(), &st) == 0 && S_ISLNK(st.st_mode))
                throw std::runtime_error("config: 'path' is a symbolic link (" + config_.path +
                                         "); rotation renames the file at path, so give the "
                                         "real file's path");
        }
        auto dir = p.parent_path();
        if (!dir.empty()) std::filesystem::create_directories(dir);
        int fd = ::open(config_.path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
        if (fd < 0)
            throw std::runtime_error("cannot open " + config_.path + ": " + std::strerror(errno));
        adopt_locked(fd);
        host_.info("appending events to " + config_.path);
        if (config_.rotating()) {
            std::string when;
            if (config_.max_bytes != 0)
                when = "past max_bytes " + std::to_string(config_.max_bytes) + " bytes";
            if (config_.every.count() != 0)
                when += (when.empty() ? "" : " or ") + std::string("every ") +
                        std::to_string(config_.every.count()) + "ms";
            host_.info("rotating " + config_.path + " " + when + " to " + stem_ +
                       "-<UTC time>-<n>" + ext_ + ", keeping " +
                       (config_.keep == 0 ? std::string("every rotated file")
                                          : std::to_string(config_.keep)));
        }
        if (config_.every.count() != 0) timer_ = std::thread([this] { timer_loop(); });
    }
    ~JsonlSink() {
        if (timer_.joinable()) {
            {
                std::lock_guard lock(mu_);
                stop_ = true;
            }
            cv_.notify_all();
            timer_.join();
        }
        if (fd_ >= 0) ::close(fd_);
    }
    JsonlSink(const JsonlSink&) = delete;
    JsonlSink& operator=(const JsonlSink&) = delete;

    clayhook::Result handle(const clayhook::Event& e) {
        clayhook::Result r;
        handle_batch(std::span<const clayhook::Event>(&e, 1), std::span<clayhook::Result>(&r, 1));
        return r;
    }

    // A batch is one write() and, with fsync, one fdatasync(): under load the
    // dispatcher hands over what piled up during the last sync, so the disk
    // sees one sync per batch, not per line.
    void handle_batch(std::span<const clayhook::Event> batch, std::span<clayhook::Result> out) {
        std::string lines;
        for (const auto& e : batch)
            append_line(lines, e);
        std::string failure;
        {
            std::lock_guard lock(mu_);  // one write() per batch keeps lines whole and in order
            failure = write_locked(lines);
        }
        for (auto& r : out)
            r = failure.empty() ? clayhook::Result::done() : clayhook::Result::retry(failure);
        if (failure.empty())
            host_.counter_add("lines_written_total", static_cast<double>(batch.size()));
    }

  private:
    // A rotated file of this path, as its name tells: "20261205T190102Z", 1.
    struct Rotated {
        std::string stamp;
        uint64_t seq = 0;
        std::string name;
        bool regular = false;
        bool operator<(const Rotated& o) const {
            return std::tie(stamp, seq) < std::tie(o.stamp, o.seq);
        }
    };

    // Writes the batch's lines into the current file, rotating it first when
    // due. Empty, or why the batch must be retried.
    std::string write_locked(const std::string& lines) {
        if (config_.rotating()) {
            std::string failure = prepare_locked(lines.size(), Clock::now(), false);
            if (!failure.empty()) return failure;
        }
        ssize_t n = ::write(fd_, lines.data(), lines.size());
        if (n != static_cast<ssize_t>(lines.size()))
            return "write to " + config_.path +
                   " failed: " + (n < 0 ? std::strerror(errno) : "short write");
        if (config_.fsync && ::fdatasync(fd_) != 0)
            return "fdatasync of " + config_.path + " failed: " + std::strerror(errno);
        if (config_.rotating() && (!wrote_ || !first_line_)) {
            wrote_ = true;
            if (!first_line_) first_line_ = Clock::now();
            cv_.notify_all();  // the timer has a deadline now
        }
        return {};
    }

    // Makes the file at path current, rotating it when due: before a batch
    // of `incoming` bytes, or (idle) from the timer, which goes by age only
    // and only for a file this instance has written into. Empty, or why not.
    std::string prepare_locked(size_t incoming, Clock::time_point now, bool idle) {
        follow_path_locked();
        if (fd_ < 0) {
            if (auto failure = open_locked(); !failure.empty()) return failure;
        }
        struct stat st {};
        if (::fstat(fd_, &st) != 0) {
            std::string failure = "cannot stat " + config_.path + ": " + std::strerror(errno);
            host_.warn(failure);
            return failure;
        }
        const auto size = static_cast<uint64_t>(st.st_size);
        if (size == 0)
            first_line_.reset();
        else if (!first_line_)
            first_line_ = now;  // lines written by another instance of this entry
        const char* why = nullptr;
        if (size > 0 && !idle && config_.max_bytes != 0 && size + incoming > config_.max_bytes)
            why = "max_bytes";
        else if (size > 0 && config_.every.count() != 0 && now - *first_line_ >= config_.every &&
                 (!idle || wrote_))
            why = "rotate_every";
        if (why != nullptr) {
            if (auto failure = rotate_locked(why, idle); !failure.empty()) return failure;
            if (auto failure = open_locked(); !failure.empty()) return failure;
        }
        if (config_.fsync && dir_unsynced_) {
            const int dfd = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            const int rc = dfd < 0 ? -1 : ::fsync(dfd);
            const int err = errno;
            if (dfd >= 0) ::close(dfd);
            if (rc != 0) {
                std::string failure = "fsync of folder " + dir_ + " after rotating " +
                                      config_.path + " failed: " + std::strerror(err);
                host_.warn(failure);
                return failure;
            }
            dir_unsynced_ = false;
        }
        return {};
    }

    // Someone else may have moved the file away or replaced it: the other
    // instance of this entry during a reload (after its rotation), or a
    // person. Then the file at path is the one to write to. A path that
    // cannot be looked at (not ENOENT) keeps the current file: a rotation,
    // if due, reports what is wrong.
    void follow_path_locked() {
        if (fd_ < 0) return;
        struct stat at {};
        if (::stat(config_.path.c_str(), &at) == 0) {
            if (at.st_dev == dev_ && at.st_ino == ino_) return;
        } else if (errno != ENOENT) {
            return;
        }
        host_.info(config_.path + " was moved away or replaced; writing to the file at that path");
        ::close(fd_);
        fd_ = -1;
    }

    std::string open_locked() {
        int fd = ::open(config_.path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
        if (fd < 0) {
            std::string failure = "cannot open " + config_.path + ": " + std::strerror(errno);
            host_.warn(failure);
            return failure;
        }
        adopt_locked(fd);
        dir_unsynced_ = true;
        return {};
    }

    // Makes `fd` the current file. A file that already holds lines is taken
    // to have had its first one at its birth time, where the filesystem
    // keeps one, else at its last change (mtime).
    void adopt_locked(int fd) {
        fd_ = fd;
        wrote_ = false;
        first_line_.reset();
        struct stat st {};
        if (::fstat(fd, &st) != 0) return;
        dev_ = st.st_dev;
        ino_ = st.st_ino;
        if (st.st_size == 0) return;
        using std::chrono::nanoseconds;
        using std::chrono::seconds;
        auto born = std::chrono::system_clock::time_point(
            std::chrono::duration_cast<std::chrono::system_clock::duration>(
                seconds(st.st_mtim.tv_sec) + nanoseconds(st.st_mtim.tv_nsec)));
        struct statx stx {};
        if (::statx(fd, "", AT_EMPTY_PATH, STATX_BTIME, &stx) == 0 &&
            (stx.stx_mask & STATX_BTIME) != 0)
            born = std::chrono::system_clock::time_point(
                std::chrono::duration_cast<std::chrono::system_clock::duration>(
                    seconds(stx.stx_btime.tv_sec) + nanoseconds(stx.stx_btime.tv_nsec)));
        auto age = std::chrono::system_clock::now() - born;
        first_line_ = Clock::now() - std::chrono::duration_cast<Clock::duration>(
                                         std::max(age, std::chrono::system_clock::duration(0)));
    }

    // Renames the current file to its rotated name and lets go of it, then
    // deletes the oldest rotated files beyond `keep`. Empty, or why not (the
    // file then stays current, untouched).
    std::string rotate_locked(const char* why, bool idle) {
        const std::string stamp = utc_stamp(std::chrono::system_clock::now());
        std::vector<Rotated> rotated;
        std::string list_error = list_rotated(rotated);
        uint64_t seq = stamp == last_stamp_ ? last_seq_ : 0;
        for (const auto& r : rotated)
            if (r.stamp == stamp) seq = std::max(seq, r.seq);
        std::string target;
        int err = EEXIST;
        for (int tries = 0; tries < 1000 && err == EEXIST; ++tries) {
            target = dir_ + "/" + stem_ + "-" + stamp + "-" + std::to_string(++seq) + ext_;
            err = rename_no_replace(config_.path, target);
        }
        if (err != 0) {
            std::string failure =
                "cannot rotate " + config_.path + " to " + target + ": " + std::strerror(err);
            host_.warn(failure + (idle ? "; trying again later" : "; the batch is retried"));
            count("rotation_failures_total");
            return failure;
        }
        last_stamp_ = stamp;
        last_seq_ = seq;
        ::close(fd_);
        fd_ = -1;
        wrote_ = false;
        first_line_.reset();
        dir_unsynced_ = true;
        count("files_rotated_total");
        host_.info("rotated " + config_.path + " to " + target + " (" + why + ")");
        if (config_.keep == 0) return {};
        if (!list_error.empty()) {
            host_.warn("cannot list " + dir_ +
                       " to delete rotated files beyond keep: " + list_error);
            return {};
        }
        rotated.push_back(Rotated{stamp, seq, target.substr(dir_.size() + 1), true});
        std::erase_if(rotated, [](const Rotated& r) { return !r.regular; });
        std::sort(rotated.begin(), rotated.end());
        for (size_t i = 0; i + config_.keep < rotated.size(); ++i) {
            const std::string old = dir_ + "/" + rotated[i].name;
            if (::unlink(old.c_str()) == 0) {
                count("rotated_files_deleted_total");
                host_.info("deleted " + old + " (keep: " + std::to_string(config_.keep) + ")");
            } else {
                host_.warn("cannot delete rotated file " + old + ": " + std::strerror(errno));
            }
        }
        return {};
    }

    // The entries of the folder named like a rotated file of this path, into
    // `out`. Empty, or why the folder could not be read.
    std::string list_rotated(std::vector<Rotated>& out) const {
        DIR* d = ::opendir(dir_.c_str());
        if (d == nullptr) return std::strerror(errno);
        for (;;) {
            errno = 0;
            const dirent* e = ::readdir(d);
            if (e == nullptr) break;
            auto r = parse_rotated(e->d_name);
            if (!r) continue;
            struct stat st {};
            r->regular = ::fstatat(::dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
                         S_ISREG(st.st_mode);
            out.push_back(std::move(*r));
        }
        const int err = errno;
        ::closedir(d);
        return err == 0 ? std::string() : std::strerror(err);
    }

    // <stem>-YYYYMMDDTHHMMSSZ-<n><ext>, n without leading zeros; else nothing.
    std::optional<Rotated> parse_rotated(std::string_view file) const {
        constexpr size_t stamp_len = 16;  // YYYYMMDDTHHMMSSZ
        if (file.size() < stem_.size() + 1 + stamp_len + 2 + ext_.size()) return std::nullopt;
        if (!file.starts_with(stem_) || file[stem_.size()] != '-' || !file.ends_with(ext_))
            return std::nullopt;
        std::string_view mid =
            file.substr(stem_.size() + 1, file.size() - stem_.size() - 1 - ext_.size());
        auto digits = [](std::string_view s) {
            return !s.empty() &&
                   std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
        };
        if (mid.size() < stamp_len + 2 || !digits(mid.substr(0, 8)) || mid[8] != 'T' ||
            !digits(mid.substr(9, 6)) || mid[15] != 'Z' || mid[16] != '-')
            return std::nullopt;
        std::string_view n = mid.substr(17);
        if (!digits(n) || n[0] == '0' || n.size() > 18) return std::nullopt;
        return Rotated{std::string(mid.substr(0, stamp_len)), std::stoull(std::string(n)),
                       std::string(file), false};
    }

    // rename() that never replaces an existing file. 0, or the errno.
    static int rename_no_replace(const std::string& from, const std::string& to) {
        if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) == 0)
            return 0;
        if (errno != EINVAL && errno != ENOSYS) return errno;
        // A filesystem without RENAME_NOREPLACE: look, then rename. Only
        // this plugin makes such names, under its mutex.
        struct stat st {};
        if (::lstat(to.c_str(), &st) == 0) return EEXIST;
        return ::rename(from.c_str(), to.c_str()) == 0 ? 0 : errno;
    }

    static std::string utc_stamp(std::chrono::system_clock::time_point t) {
        const std::time_t s = std::chrono::system_clock::to_time_t(t);
        std::tm tm{};
        ::gmtime_r(&s, &tm);
        char buf[32];
        std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
        return buf;
    }

    // Counters must not throw halfway through a rotation.
    void count(std::string_view metric) const noexcept {
        try {
            host_.counter_add(metric);
        } catch (...) {
        }
    }

    // With rotate_every: rotates a file that has gone quiet once its first
    // line is old enough, so that a file covers no more than its period even
    // when no batch comes to rotate it. After a failure, tries again after a
    // while (rotate_every, between 1s and 1min).
    void timer_loop() {
        std::unique_lock lock(mu_);
        std::optional<Clock::time_point> retry_at;
        while (!stop_) {
            std::optional<Clock::time_point> due = retry_at;
            if (!due && fd_ >= 0 && wrote_ && first_line_) due = *first_line_ + config_.every;
            if (!due) {
                cv_.wait(lock);
                continue;
            }
            const auto now = Clock::now();
            if (now < *due) {
                cv_.wait_until(lock, *due);
                continue;
            }
            retry_at.reset();
            bool failed = true;
            try {
                failed = !prepare_locked(0, now, true).empty();
            } catch (...) {
            }
            if (failed)
                retry_at = now + std::clamp<milliseconds>(config_.every, std::chrono::seconds(1),
                                                          std::chrono::minutes(1));
        }
    }

    static void append_line(std::string& out, const clayhook::Event& e) {
        std::string line =
            "{\"id\":" + str(e.id) + ",\"source\":" + str(e.source) + ",\"type\":" + str(e.type) +
            ",\"key\":" + str(e.idempotency_key) + ",\"attempt\":" + std::to_string(e.attempt) +
            ",\"received_at_ms\":" + std::to_string(ms(e.received_at)) +
            ",\"handled_at_ms\":" + std::to_string(ms(std::chrono::system_clock::now())) +
            ",\"body\":" + body_json(e.body) + "}";
        append_escaping_line_breaks(out, line);
        out += '\n';
    }

    // The body as compact JSON: parsed and dumped, so that no whitespace
    // (newlines included) is left outside its strings, and every newline
    // inside them is an escape. Not JSON: the body as a JSON string. Empty:
    // null.
    static std::string body_json(std::string_view body) {
        if (body.empty()) return "null";
        try {
            return clayhook::json::dump(clayhook::json::parse(body));
        } catch (const clayhook::json::ParseError&) {
            return str(body);
        }
    }

    // A JSON string for `s`, with whatever is not valid UTF-8 in it replaced
    // by U+FFFD, so that the line always parses.
    static std::string str(std::string_view s) {
        std::string text;
        text.reserve(s.size());
        for (size_t i = 0; i < s.size();) {
            const auto lead = static_cast<unsigned char>(s[i]);
            if (lead < 0x80) {
                text += s[i++];
                continue;
            }
            const size_t len = lead >= 0xC2 && lead <= 0xDF   ? 2
                               : lead >= 0xE0 && lead <= 0xEF ? 3
                               : lead >= 0xF0 && lead <= 0xF4 ? 4
                                                              : 0;
            bool ok = len != 0 && i + len <= s.size();
            uint32_t cp = lead & (0x7Fu >> len);
            for (size_t k = 1; ok && k < len; ++k) {
                const auto byte = static_cast<unsigned char>(s[i + k]);
                ok = (byte & 0xC0u) == 0x80u;
                cp = (cp << 6) | (byte & 0x3Fu);
            }
            const uint32_t min = len == 2 ? 0x80 : len == 3 ? 0x800 : 0x10000;
            ok = ok && cp >= min && (cp < 0xD800 || cp > 0xDFFF) && cp <= 0x10FFFF;
            if (ok) {
                text.append(s.substr(i, len));
                i += len;
            } else {
                text += "\xEF\xBF\xBD";
                ++i;
            }
        }
        return clayhook::json::quote(text);
    }

    // Appends `line` with U+0085, U+2028 and U+2029 written as \u escapes:
    // JSON allows them raw in strings, but some readers (Python's
    // str.splitlines(), JavaScript before ES2019) end a line at them. They
    // can only occur inside strings (JSON's own syntax is ASCII), and the
    // line is valid UTF-8, so matching their bytes is exact.
    static void append_escaping_line_breaks(std::string& out, std::string_view line) {
        for (size_t i = 0; i < line.size(); ++i) {
            if (line.compare(i, 2, "\xC2\x85") == 0) {
                out += "\\u0085";
                i += 1;
            } else if (line.compare(i, 3, "\xE2\x80\xA8") == 0) {
                out += "\\u2028";
                i += 2;
            } else if (line.compare(i, 3, "\xE2\x80\xA9") == 0) {
                out += "\\u2029";
                i += 2;
            } else {
                out += line[i];
            }
        }
    }
    static long long ms(std::chrono::system_clock::time_point t) {
        return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
    }
    clayhook::Host& host_;
    const SinkConfig config_;
    std::string dir_, stem_, ext_;  // events.jsonl in var: "var", "events", ".jsonl"

    std::mutex mu_;  // everything below
    std::condition_variable cv_;
    int fd_ = -1;  // the current file; -1 after a rotation whose reopening failed
    dev_t dev_ = 0;
    ino_t ino_ = 0;
    std::optional<Clock::time_point> first_line_;  // when the current file's first line came
    bool wrote_ = false;         // this instance has written into the current file
    bool dir_unsynced_ = false;  // a rotation's renaming and creating, not yet fsynced
    std::string last_stamp_;     // the last rotated name's time and sequence number
    uint64_t last_seq_ = 0;
    bool stop_ = false;
    std::thread timer_;  // with rotate_every; last, so it starts once all else is set
};

CLAYHOOK_PLUGIN(JsonlSink)
