#include "log/Logger.h"
#include "log/Journal.h"
#include "support/TempDir.h"

#include <Poco/JSON/ParseHandler.h>
#include <Poco/JSON/Parser.h>

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <optional>
#include <sstream>

using namespace clayhook;

namespace {

LogOptions json_options() {
    LogOptions o;
    o.format = LogFormat::json;
    return o;
}

// Parses one JSON log line (without its newline), keeping the key order.
Poco::JSON::Object::Ptr parse_line(const std::string& line) {
    INFO(line);
    REQUIRE(!line.empty());
    REQUIRE(line.back() == '\n');
    REQUIRE(line.find('\n') == line.size() - 1);
    Poco::JSON::Parser parser(new Poco::JSON::ParseHandler(true));
    Poco::Dynamic::Var v;
    REQUIRE_NOTHROW(v = parser.parse(line.substr(0, line.size() - 1)));
    auto obj = v.extract<Poco::JSON::Object::Ptr>();
    REQUIRE(obj);
    return obj;
}

// Sets (or, with nullopt, unsets) an environment variable for one scope.
class ScopedEnv {
  public:
    ScopedEnv(const char* name, std::optional<std::string> value) : name_(name) {
        if (const char* old = std::getenv(name)) old_ = old;
        if (value)
            ::setenv(name, value->c_str(), 1);
        else
            ::unsetenv(name);
    }
    ~ScopedEnv() {
        if (old_)
            ::setenv(name_, old_->c_str(), 1);
        else
            ::unsetenv(name_);
    }
    ScopedEnv(const ScopedEnv&) = delete;
    ScopedEnv& operator=(const ScopedEnv&) = delete;

  private:
    const char* name_;
    std::optional<std::string> old_;
};

}  // namespace

TEST_CASE("log lines are logfmt with escaped values", "[log]") {
    std::ostringstream out;
    Logger log(out, Level::info);
    log.info("intake", "request rejected",
             {{"reason", "bad \"signature\""}, {"remote", "127.0.0.1"}});
    std::string line = out.str();
    CHECK_THAT(line, Catch::StartsWith("ts="));
    CHECK_THAT(line, Catch::Contains("level=info component=intake msg=\"request rejected\""));
    CHECK_THAT(line, Catch::Contains(R"(reason="bad \"signature\"")"));
    CHECK_THAT(line, Catch::Contains("remote=127.0.0.1"));
    CHECK(line.back() == '\n');
}

TEST_CASE("lines below the level are dropped", "[log]") {
    std::ostringstream out;
    Logger log(out, Level::warn);
    log.info("x", "quiet");
    CHECK(out.str().empty());
    log.error("x", "loud");
    CHECK_THAT(out.str(), Catch::Contains("loud"));
}

TEST_CASE("registered secrets never reach a log line", "[log][security]") {
    std::ostringstream out;
    Logger log(out, Level::debug);
    log.add_secret("s3cr3t-value-with\"quote");
    log.add_secret("dact");  // a secret inside the redaction mark must not loop
    log.warn("plugin", "config was {\"token\":\"s3cr3t-value-with\"quote\"}",
             {{"header", "Bearer s3cr3t-value-with\"quote"}, {"x", "redacted dact"}});
    std::string line = out.str();
    CHECK(line.find("s3cr3t") == std::string::npos);
    CHECK_THAT(line, Catch::Contains("[redacted]"));
}

TEST_CASE("logfmt lines are unchanged by the new options", "[log]") {
    std::ostringstream out;
    Logger log(out, Level::info);
    CHECK(log.format() == LogFormat::logfmt);
    log.info("intake", "accepted", {{"remote", "127.0.0.1"}, {"why", "a b"}});
    std::string line = out.str();
    REQUIRE(line.size() > 29);
    // ts=YYYY-MM-DDTHH:MM:SS.mmmZ, then the rest exactly.
    CHECK(line.substr(0, 3) == "ts=");
    CHECK(line[13] == 'T');
    CHECK(line[26] == 'Z');
    CHECK(line.substr(27) ==
          " level=info component=intake msg=accepted remote=127.0.0.1 why=\"a b\"\n");
}

TEST_CASE("json lines are one object each, keys in order, fields as strings", "[log]") {
    std::ostringstream out;
    Logger log(out, Level::debug, json_options());
    CHECK(log.format() == LogFormat::json);
    log.warn("intake", "request rejected", {{"reason", "bad signature"}, {"status", "401"}});
    std::string line = out.str();
    auto obj = parse_line(line);
    CHECK(obj->getNames() ==
          std::vector<std::string>{"ts", "level", "component", "msg", "reason", "status"});
    CHECK(obj->getValue<std::string>("level") == "warn");
    CHECK(obj->getValue<std::string>("component") == "intake");
    CHECK(obj->getValue<std::string>("msg") == "request rejected");
    CHECK(obj->getValue<std::string>("reason") == "bad signature");
    CHECK(obj->get("status").isString());
    CHECK(obj->getValue<std::string>("status") == "401");
    // The same timestamp form as logfmt's.
    auto ts = obj->getValue<std::string>("ts");
    REQUIRE(ts.size() == 24);
    CHECK(ts[10] == 'T');
    CHECK(ts[19] == '.');
    CHECK(ts.back() == 'Z');
    CHECK_THAT(line, Catch::StartsWith("{\"ts\":\"" + ts + "\",\"level\":\"warn\","));
}

TEST_CASE("json escapes quotes, backslashes, newlines and control characters", "[log]") {
    std::ostringstream out;
    Logger log(out, Level::info, json_options());
    const std::string nasty = std::string("say \"hi\" \\ path\nnext\tline\r\x01\x1f\x7f end");
    log.info("x", nasty, {{"k\"ey", nasty}});
    std::string line = out.str();
    CHECK_THAT(line, Catch::Contains(R"(say \"hi\" \\ path\nnext\tline\r\u0001\u001f)"));
    auto obj = parse_line(line);
    CHECK(obj->getValue<std::string>("msg") == nasty);
    CHECK(obj->getValue<std::string>("k\"ey") == nasty);

    CHECK(json_string("") == "\"\"");
    CHECK(json_string(std::string("\0", 1)) == "\"\\u0000\"");
    CHECK(json_string("\b\f") == "\"\\u0008\\u000c\"");
}

TEST_CASE("json replaces invalid UTF-8 with U+FFFD and keeps valid UTF-8", "[log]") {
    const std::string fffd = "\xEF\xBF\xBD";
    // Valid: 2-, 3- and 4-byte sequences pass through unchanged.
    CHECK(json_string("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80") ==
          "\"caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80\"");
    CHECK(json_string("a\xFF"
                      "b") == "\"a" + fffd + "b\"");  // never valid
    CHECK(json_string("a\x80"
                      "b") == "\"a" + fffd + "b\"");                         // stray continuation
    CHECK(json_string("a\xC3") == "\"a" + fffd + "\"");                      // truncated at the end
    CHECK(json_string("\xC3(") == "\"" + fffd + "(\"");                      // truncated inside
    CHECK(json_string("\xC0\xAF") == "\"" + fffd + fffd + "\"");             // overlong '/'
    CHECK(json_string("\xE0\x80\xAF") == "\"" + fffd + fffd + fffd + "\"");  // overlong
    CHECK(json_string("\xED\xA0\x80") == "\"" + fffd + fffd + fffd + "\"");  // surrogate
    CHECK(json_string("\xF4\x90\x80\x80") ==
          "\"" + fffd + fffd + fffd + fffd + "\"");  // past U+10FFFF
    // A byte that would swallow the closing quote stays out of it.
    CHECK(json_string("\xE2\x82") == "\"" + fffd + fffd + "\"");

    std::ostringstream out;
    Logger log(out, Level::info, json_options());
    log.info("x", "bad \xFF\xFE bytes", {{"v", "\xC3\"q"}});
    std::string line = out.str();
    CHECK(line.find('\xFF') == std::string::npos);
    CHECK(line.find('\xFE') == std::string::npos);
    auto obj = parse_line(line);
    CHECK(obj->getValue<std::string>("msg") == "bad " + fffd + fffd + " bytes");
    CHECK(obj->getValue<std::string>("v") == fffd + "\"q");
}

TEST_CASE("json lines are redacted before escaping", "[log][security]") {
    std::ostringstream out;
    Logger log(out, Level::debug, json_options());
    log.add_secret("s3cr3t-value-with\"quote");
    log.add_secret("line\nbreak-secret");
    log.warn("plugin", "config was {\"token\":\"s3cr3t-value-with\"quote\"}",
             {{"header", "Bearer s3cr3t-value-with\"quote"}, {"other", "x line\nbreak-secret y"}});
    std::string line = out.str();
    CHECK(line.find("s3cr3t") == std::string::npos);
    CHECK(line.find("break-secret") == std::string::npos);
    auto obj = parse_line(line);
    CHECK(obj->getValue<std::string>("msg") == "config was {\"token\":\"[redacted]\"}");
    CHECK(obj->getValue<std::string>("header") == "Bearer [redacted]");
    CHECK(obj->getValue<std::string>("other") == "x [redacted] y");
}

TEST_CASE("a json field named like a key already written is prefixed, never repeated", "[log]") {
    std::ostringstream out;
    Logger log(out, Level::info, json_options());
    log.info("intake", "the message",
             {{"msg", "a field"},
              {"ts", "t"},
              {"level", "l"},
              {"component", "c"},
              {"dup", "1"},
              {"dup", "2"},
              {"field.msg", "f"}});
    std::string line = out.str();
    auto count = [&](const std::string& key) {
        size_t n = 0;
        for (auto at = line.find(key); at != std::string::npos; at = line.find(key, at + 1))
            ++n;
        return n;
    };
    CHECK(count("\"msg\":") == 1);
    CHECK(count("\"ts\":") == 1);
    CHECK(count("\"dup\":") == 1);
    auto obj = parse_line(line);
    CHECK(obj->getNames() == std::vector<std::string>{"ts", "level", "component", "msg",
                                                      "field.msg", "field.ts", "field.level",
                                                      "field.component", "dup", "field.dup",
                                                      "field.field.msg"});
    CHECK(obj->getValue<std::string>("msg") == "the message");
    CHECK(obj->getValue<std::string>("level") == "info");
    CHECK(obj->getValue<std::string>("field.msg") == "a field");
    CHECK(obj->getValue<std::string>("field.level") == "l");
    CHECK(obj->getValue<std::string>("dup") == "1");
    CHECK(obj->getValue<std::string>("field.dup") == "2");
    CHECK(obj->getValue<std::string>("field.field.msg") == "f");
}

TEST_CASE("the format can change on a running logger", "[log]") {
    std::ostringstream out;
    Logger log(out, Level::info);
    log.info("x", "one");
    log.set_format(LogFormat::json);
    log.info("x", "two");
    log.set_format(LogFormat::logfmt);
    log.info("x", "three");
    std::istringstream lines(out.str());
    std::string a, b, c;
    REQUIRE(std::getline(lines, a));
    REQUIRE(std::getline(lines, b));
    REQUIRE(std::getline(lines, c));
    CHECK_THAT(a, Catch::Contains(" msg=one"));
    CHECK(parse_line(b + "\n")->getValue<std::string>("msg") == "two");
    CHECK_THAT(c, Catch::Contains(" msg=three"));

    CHECK(parse_log_format("logfmt") == LogFormat::logfmt);
    CHECK(parse_log_format("json") == LogFormat::json);
    CHECK_THROWS_AS(parse_log_format("xml"), std::invalid_argument);
    CHECK(log_format_name(LogFormat::json) == "json");
    CHECK(log_format_name(LogFormat::logfmt) == "logfmt");
}

TEST_CASE("for the journal each line starts with its syslog priority", "[log]") {
    auto format = GENERATE(LogFormat::logfmt, LogFormat::json);
    INFO("format " << log_format_name(format));
    std::ostringstream out;
    LogOptions o;
    o.format = format;
    o.journal_priority = true;
    Logger log(out, Level::debug, o);
    log.debug("x", "d");
    log.info("x", "i");
    log.warn("x", "w");
    log.error("x", "e");
    std::istringstream lines(out.str());
    const char* expected[] = {"<7>", "<6>", "<4>", "<3>"};
    for (const char* prefix : expected) {
        std::string line;
        REQUIRE(std::getline(lines, line));
        CHECK_THAT(line, Catch::StartsWith(std::string(prefix) +
                                           (format == LogFormat::json ? "{\"ts\":" : "ts=")));
        if (format == LogFormat::json) CHECK_NOTHROW(parse_line(line.substr(3) + "\n"));
    }
    std::string rest;
    CHECK_FALSE(std::getline(lines, rest));

    // Without the option, no prefix.
    std::ostringstream plain;
    LogOptions p;
    p.format = format;
    Logger quiet(plain, Level::debug, p);
    quiet.error("x", "e");
    CHECK(plain.str().front() != '<');
}

TEST_CASE("stream_is_journal compares JOURNAL_STREAM with the fd's device and inode", "[log]") {
    clayhook::test::TempDir dir;
    auto path = dir.write("journal", "");
    int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
    REQUIRE(fd >= 0);
    auto other_path = dir.write("other", "");
    int other = ::open(other_path.c_str(), O_WRONLY | O_CLOEXEC);
    REQUIRE(other >= 0);
    struct stat st {};
    REQUIRE(::fstat(fd, &st) == 0);
    const std::string dev = std::to_string(st.st_dev);
    const std::string ino = std::to_string(st.st_ino);

    {
        ScopedEnv env("JOURNAL_STREAM", dev + ":" + ino);
        CHECK(stream_is_journal(fd));
        CHECK_FALSE(stream_is_journal(other));  // another file
        CHECK_FALSE(stream_is_journal(-1));     // no file at all
    }
    {
        ScopedEnv env("JOURNAL_STREAM", std::nullopt);
        CHECK_FALSE(stream_is_journal(fd));
    }
    for (const std::string& bad :
         {std::string(), dev, dev + ":", ":" + ino, dev + ":" + ino + "x", dev + ":" + ino + ":",
          dev + ";" + ino, "-" + dev + ":" + ino, dev + ": " + ino, std::string("x:y")}) {
        INFO("JOURNAL_STREAM=" << bad);
        ScopedEnv env("JOURNAL_STREAM", bad);
        CHECK_FALSE(stream_is_journal(fd));
    }
    {
        // The right device, another inode: a stream redirected elsewhere.
        ScopedEnv env("JOURNAL_STREAM", dev + ":" + std::to_string(st.st_ino + 1));
        CHECK_FALSE(stream_is_journal(fd));
    }
    ::close(fd);
    ::close(other);
}
