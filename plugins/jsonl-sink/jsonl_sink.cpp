// jsonl-sink: appends every event it receives to a file, one JSON object per
// line. The example plugin that docs/writing-plugins.md walks through.
//
// One record, one line, whatever the body holds: the body is parsed and
// written back as compact JSON (a body that is not JSON goes in as a JSON
// string), never copied raw, so a newline in a body cannot end a record
// early or plant a forged one.
//
// config:
//   path:  file to append to (required); its folder is created if missing
//   fsync: true to fdatasync after every write, one per batch (default false)
#include <clayhook/plugin.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>

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
    std::string path_;
    bool fsync_;
    int fd_ = -1;
    std::mutex mu_;
};

CLAYHOOK_PLUGIN(JsonlSink)
