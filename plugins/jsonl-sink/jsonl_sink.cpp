// jsonl-sink: appends every event it receives to a file, one JSON object per
// line. The example plugin that docs/writing-plugins.md walks through.
//
// config:
//   path:  file to append to (required); its folder is created if missing
//   fsync: true to fdatasync after every write, one per batch (default false)
#include <clayhook/plugin.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <span>
#include <stdexcept>
#include <string>

class JsonlSink {
  public:
    static constexpr const char* name = "jsonl-sink";
    static constexpr const char* version = "1.0.0";
    static constexpr const char* description = "appends every event to a JSON-lines file";
    static constexpr const char* events[] = {"*"};
    static constexpr uint32_t max_batch_size = 256;

    JsonlSink(clayhook::Host& host, const clayhook::json::Value& config)
        : host_(host),
          path_(config.get_string("path", "")),
          fsync_(config.get_bool("fsync", false)) {
        if (path_.empty()) throw std::runtime_error("config: 'path' is required");
        auto dir = std::filesystem::path(path_).parent_path();
        if (!dir.empty()) std::filesystem::create_directories(dir);
        fd_ = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
        if (fd_ < 0) throw std::runtime_error("cannot open " + path_ + ": " + std::strerror(errno));
        host_.info("appending events to " + path_);
    }
    ~JsonlSink() { ::close(fd_); }
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
            ssize_t n = ::write(fd_, lines.data(), lines.size());
            if (n != static_cast<ssize_t>(lines.size()))
                failure = "write to " + path_ +
                          " failed: " + (n < 0 ? std::strerror(errno) : "short write");
            else if (fsync_ && ::fdatasync(fd_) != 0)
                failure = "fdatasync of " + path_ + " failed: " + std::strerror(errno);
        }
        for (auto& r : out)
            r = failure.empty() ? clayhook::Result::done() : clayhook::Result::retry(failure);
        if (failure.empty())
            host_.counter_add("lines_written_total", static_cast<double>(batch.size()));
    }

  private:
    static void append_line(std::string& out, const clayhook::Event& e) {
        using clayhook::json::quote;
        out += "{\"id\":" + quote(e.id) + ",\"source\":" + quote(e.source) +
               ",\"type\":" + quote(e.type) + ",\"key\":" + quote(e.idempotency_key) +
               ",\"attempt\":" + std::to_string(e.attempt) +
               ",\"received_at_ms\":" + std::to_string(ms(e.received_at)) +
               ",\"handled_at_ms\":" + std::to_string(ms(std::chrono::system_clock::now())) +
               ",\"body\":" + std::string(e.body.empty() ? "null" : e.body) + "}\n";
    }
    static long long ms(std::chrono::system_clock::time_point t) {
        return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
    }
    clayhook::Host& host_;
    std::string path_;
    bool fsync_;
    int fd_ = -1;
    std::mutex mu_;
};

CLAYHOOK_PLUGIN(JsonlSink)
