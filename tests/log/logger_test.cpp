#include "log/Logger.h"

#include <catch2/catch.hpp>

#include <sstream>

using namespace clayhook;

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
