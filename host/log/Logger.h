#pragma once

#include <mutex>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace clayhook {

enum class Level { debug = 0, info = 1, warn = 2, error = 3 };

Level parse_level(std::string_view name);  // throws std::invalid_argument
std::string_view level_name(Level level);
// The syslog priority journald reads from a `<N>` line prefix (sd-daemon(3)):
// debug 7, info 6, warn 4, error 3.
int syslog_priority(Level level);

enum class LogFormat { logfmt, json };

LogFormat parse_log_format(std::string_view name);  // throws std::invalid_argument
std::string_view log_format_name(LogFormat format);

struct LogOptions {
    LogFormat format = LogFormat::logfmt;
    // Prefix every line with `<N>`, its level's syslog priority, which
    // journald strips and keeps as the entry's PRIORITY. For a stream that
    // is the journal's (stream_is_journal(), log/Journal.h).
    bool journal_priority = false;
};

// One line per call, in logfmt: `ts=… level=… component=… msg="…" k=v…`,
// or in JSON: `{"ts":"…","level":"…","component":"…","msg":"…","k":"v",…}`
// (every field a string member, in order; a field named like a key already
// written, such as "msg", becomes "field.msg").
// Every message and field value passes through a redactor that replaces any
// registered secret value with [redacted], before it is escaped: secrets are
// never formatted into messages on purpose, and this catches the accidents
// (a plugin echoing its config, a sender echoing a token into a header we
// log).
class Logger {
  public:
    using Fields = std::vector<std::pair<std::string_view, std::string>>;

    explicit Logger(std::ostream& out, Level min_level = Level::info, LogOptions options = {});

    void set_level(Level level);
    Level level() const;
    bool enabled(Level level) const;

    void set_format(LogFormat format);
    LogFormat format() const;

    // Registers a secret value to redact from every later line. Values
    // shorter than 4 bytes are ignored: redacting them would mangle logs and
    // they are no secret worth the name.
    void add_secret(std::string_view value);

    void log(Level level, std::string_view component, std::string_view message,
             const Fields& fields = {});
    void debug(std::string_view c, std::string_view m, const Fields& f = {}) {
        log(Level::debug, c, m, f);
    }
    void info(std::string_view c, std::string_view m, const Fields& f = {}) {
        log(Level::info, c, m, f);
    }
    void warn(std::string_view c, std::string_view m, const Fields& f = {}) {
        log(Level::warn, c, m, f);
    }
    void error(std::string_view c, std::string_view m, const Fields& f = {}) {
        log(Level::error, c, m, f);
    }

  private:
    std::string redact(std::string line) const;
    std::string logfmt_line(std::string_view ts, Level level, std::string_view component,
                            std::string_view message, const Fields& fields) const;
    std::string json_line(std::string_view ts, Level level, std::string_view component,
                          std::string_view message, const Fields& fields) const;

    std::ostream& out_;
    mutable std::mutex mu_;
    Level level_;
    LogFormat format_;
    const bool journal_priority_;
    std::vector<std::string> secrets_;
};

// logfmt value: bare when safe, else quoted with \" \\ \n escaped.
std::string logfmt_value(std::string_view v);

// A JSON string literal, quotes included: `"` and `\` escaped, control
// characters as \n \r \t or \u00XX, and every byte that is not part of
// valid UTF-8 replaced with U+FFFD, so the result is always valid JSON.
std::string json_string(std::string_view v);

}  // namespace clayhook
