// The crash record a fatal signal leaves (host/crash/): what the next start
// reads, and what it refuses. The writing side runs in a real crash in
// tests/dispatch/fault_containment_test.cpp.
#include "crash/CrashRecord.h"
#include "support/TempDir.h"

#include <catch2/catch.hpp>

using namespace clayhook;

TEST_CASE("crash record: read, and its reason names the signal and the plugin", "[crash]") {
    test::TempDir dir;
    CHECK_FALSE(read_crash_record(dir.file("none.crash")).has_value());
    auto path = dir.write("c.crash",
                          "clayhook-crash 1\nsignal SIGSEGV\nowner vm:12:ab\nplugin probe\n"
                          "deliveries 12 13\n");
    auto r = read_crash_record(path);
    REQUIRE(r.has_value());
    CHECK(r->signal == "SIGSEGV");
    CHECK(r->owner == "vm:12:ab");
    CHECK(r->plugin == "probe");
    CHECK(r->deliveries == std::vector<int64_t>{12, 13});
    CHECK(r->reason() ==
          "the host died of SIGSEGV during this call (plugin 'probe', running in-process)");

    // Outside any plugin call: no plugin, no deliveries.
    auto outside = read_crash_record(
        dir.write("o.crash", "clayhook-crash 1\nsignal SIGABRT\nowner h\nplugin \ndeliveries\n"));
    REQUIRE(outside.has_value());
    CHECK(outside->plugin.empty());
    CHECK(outside->deliveries.empty());
    CHECK(outside->reason() == "the host died of SIGABRT during this call");
}

TEST_CASE("crash record: anything else is refused with the file named", "[crash]") {
    test::TempDir dir;
    for (const char* bad :
         {"", "hello\n", "clayhook-crash 2\nsignal SIGSEGV\n", "clayhook-crash 1\nowner h\n",
          "clayhook-crash 1\nsignal KILL\n", "clayhook-crash 1\nsignal SIGSEGV\ndeliveries 1 x\n",
          "clayhook-crash 1\nsignal SIGSEGV\nbogus 1\n"}) {
        auto path = dir.write("bad.crash", bad);
        INFO(bad);
        try {
            read_crash_record(path);
            FAIL("accepted");
        } catch (const std::runtime_error& e) {
            CHECK(std::string(e.what()).find(path) != std::string::npos);
        }
    }
}
