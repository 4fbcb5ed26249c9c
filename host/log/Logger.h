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

// One line per call in logfmt: `ts=… level=… component=… msg="…" k=v…`.
// Every line passes through a redactor that replaces any registered secret
// value with [redacted]: secrets are never formatted into messages on
// purpose, and this catches the accidents (a plugin echoing its config, a
// sender echoing a token into a header we log).
class Logger {
  public:
    using Fields = std::vector<std::pair<std::string_view, std::string>>;

    explicit Logger(std::ostream& out, Level min_level = Level::info);

    void set_level(Level level);
    Level level() const;
    bool enabled(Level level) const;

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

    std::ostream& out_;
    mutable std::mutex mu_;
    Level level_;
    std::vector<std::string> secrets_;
};

// logfmt value: bare when safe, else quoted with \" \\ \n escaped.
std::string logfmt_value(std::string_view v);

}  // namespace clayhook
