// The journal's next segment prepared in advance (SpareSegment), on real
// files in a fresh temp folder: zeros of the full size, renamed into place
// and written over without growing, leftovers of a previous run deleted, a
// failure said and survived, a stop in the middle leaving nothing behind.
#include "store/journal/SpareSegment.h"
#include "support/TempDir.h"
#include "support/Wait.h"

#include <catch2/catch.hpp>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <mutex>
#include <string>
#include <vector>

using namespace clayhook;
using namespace clayhook::journal;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

}  // namespace

TEST_CASE("spare segment: zeros of the full size, renamed into place, written over in place",
          "[journal][spare]") {
    test::TempDir dir;
    SpareSegment spare(dir.path(), 3 * 1024 * 1024 + 5, {});
    CHECK(!spare.ready());
    CHECK(spare.take(dir.file("seg-1.log")) == -1);  // none yet
    spare.want();
    REQUIRE(test::wait_until([&] { return spare.ready(); }));
    const std::string ready = dir.file("spare.seg");
    REQUIRE(fs::file_size(ready) == 3 * 1024 * 1024 + 5);
    CHECK(read_file(ready).find_first_not_of('\0') == std::string::npos);
    CHECK(!fs::exists(dir.file("spare.tmp")));

    const int fd = spare.take(dir.file("seg-1.log"));
    REQUIRE(fd >= 0);
    CHECK(!spare.ready());
    CHECK(!fs::exists(ready));
    REQUIRE(::write(fd, "record", 6) == 6);  // at offset 0, over the zeros
    ::close(fd);
    const std::string bytes = read_file(dir.file("seg-1.log"));
    CHECK(bytes.size() == 3 * 1024 * 1024 + 5);
    CHECK(bytes.compare(0, 6, "record") == 0);
    CHECK(bytes.find_first_not_of('\0', 6) == std::string::npos);

    spare.want();  // the next one
    REQUIRE(test::wait_until([&] { return spare.ready(); }));
    spare.stop();
    spare.remove();
    CHECK(!fs::exists(ready));
    CHECK(SpareSegment::is_spare_name("spare.seg"));
    CHECK(SpareSegment::is_spare_name("spare.tmp"));
    CHECK(!SpareSegment::is_spare_name("seg-0000000000000001.log"));
}

TEST_CASE("spare segment: what a previous run left is deleted, not trusted", "[journal][spare]") {
    test::TempDir dir;
    std::ofstream(dir.file("spare.seg")) << "half";
    std::ofstream(dir.file("spare.tmp")) << "half";
    SpareSegment spare(dir.path(), 4096, {});
    CHECK(!fs::exists(dir.file("spare.seg")));
    CHECK(!fs::exists(dir.file("spare.tmp")));
    CHECK(!spare.ready());
}

TEST_CASE("spare segment: one that cannot be made is said, and none is handed out",
          "[journal][spare]") {
    test::TempDir dir;
    std::mutex mu;
    std::vector<std::string> said;
    SpareSegment spare(dir.file("no-such-folder"), 4096, [&](const std::string& w) {
        std::lock_guard lk(mu);
        said.push_back(w);
    });
    spare.want();
    REQUIRE(test::wait_until([&] {
        std::lock_guard lk(mu);
        return !said.empty();
    }));
    {
        std::lock_guard lk(mu);
        CHECK_THAT(said[0], Catch::Contains("cannot prepare the next segment") &&
                                Catch::Contains("no-such-folder/spare.tmp"));
    }
    CHECK(!spare.ready());
    CHECK(spare.take(dir.file("seg-1.log")) == -1);
    CHECK(!fs::exists(dir.file("seg-1.log")));
}

TEST_CASE("spare segment: a stop while it is written leaves no file", "[journal][spare]") {
    test::TempDir dir;
    std::vector<std::string> said;
    {
        SpareSegment spare(dir.path(), 256ull << 20,
                           [&](const std::string& w) { said.push_back(w); });
        spare.want();
        // Under way (the file exists) or not yet started: either way the stop
        // ends it within one 1 MiB write.
        test::wait_until([&] { return fs::exists(dir.file("spare.tmp")); }, 2s);
        spare.stop();
        CHECK(!spare.ready());
    }
    CHECK(!fs::exists(dir.file("spare.tmp")));
    CHECK(!fs::exists(dir.file("spare.seg")));
    CHECK(said.empty());  // a stop is not a failure
}

TEST_CASE("spare segment: a segment the journal is done with is taken as the spare, unwritten",
          "[journal][spare]") {
    test::TempDir dir;
    constexpr uint64_t kBytes = 64 * 1024;
    SpareSegment spare(dir.path(), kBytes, {});
    // Nearly full, as a segment appended to from empty is when it rolls.
    const uint64_t least = spare.min_reuse_bytes();
    CHECK(least == kBytes - kBytes / 16);
    const std::string old_records = "old records " + std::string(least - 12, 'o');
    const std::string done = dir.write("seg-0000000000000001.log", old_records);

    // Less than that: mostly appended to, not written over. Refused, left as it is.
    const std::string small = dir.write("seg-0000000000000002.log", std::string(least - 1, 's'));
    CHECK_FALSE(spare.offer(small));
    CHECK(fs::file_size(small) == least - 1);
    CHECK_FALSE(spare.offer(dir.file("seg-0000000000000009.log")));  // no such file

    REQUIRE(spare.offer(done));
    CHECK(spare.ready());
    CHECK(!fs::exists(done));
    CHECK(read_file(dir.file("spare.seg")) == old_records);  // renamed, nothing written
    // One spare at a time: a second offer is refused, and want() writes none.
    const std::string another = dir.write("seg-0000000000000003.log", old_records);
    CHECK_FALSE(spare.offer(another));
    CHECK(fs::exists(another));
    spare.want();  // no zeros written over it: take() hands out the old records

    const int fd = spare.take(dir.file("seg-0000000000000004.log"));
    REQUIRE(fd >= 0);
    REQUIRE(::write(fd, "new", 3) == 3);  // at offset 0, over the old records
    ::close(fd);
    const std::string bytes = read_file(dir.file("seg-0000000000000004.log"));
    CHECK(bytes.size() == old_records.size());
    CHECK(bytes.compare(0, 3, "new") == 0);
    CHECK(bytes.compare(3, std::string::npos, old_records, 3) == 0);

    // While one is being written from zeros, an offer is refused.
    spare.want();
    CHECK_FALSE(spare.offer(another));
    REQUIRE(test::wait_until([&] { return spare.ready(); }));
    CHECK(read_file(dir.file("spare.seg")).find_first_not_of('\0') == std::string::npos);
    CHECK(fs::exists(another));

    // After stop() nothing is taken: the journal deletes the file instead.
    const int fd5 = spare.take(dir.file("seg-0000000000000005.log"));
    REQUIRE(fd5 >= 0);
    ::close(fd5);
    spare.stop();
    CHECK_FALSE(spare.offer(another));
    CHECK(fs::exists(another));
}

TEST_CASE(
    "spare segment: without room for its zeros none is written, and after a failure "
    "it tries again only for the next segment",
    "[journal][spare]") {
    test::TempDir dir;
    std::mutex mu;
    std::vector<std::string> said;
    int asked = 0;
    SpareSegment spare(
        dir.path(), 4096,
        [&](const std::string& w) {
            std::lock_guard lk(mu);
            said.push_back(w);
        },
        [&](uint64_t bytes) {
            std::lock_guard lk(mu);
            CHECK(bytes == 4096);
            ++asked;
            return false;
        });
    auto count = [&](size_t& n_said) {
        std::lock_guard lk(mu);
        n_said = said.size();
        return asked;
    };
    size_t n_said = 0;
    CHECK(spare.want());
    REQUIRE(test::wait_until([&] { return count(n_said) == 1 && n_said == 1; }));
    {
        std::lock_guard lk(mu);
        CHECK_THAT(said[0],
                   Catch::Contains("not prepared") &&
                       Catch::Contains("do not fit on the filesystem above store.min_free_space"));
    }
    CHECK(!fs::exists(dir.file("spare.tmp")));
    // Each sync pass past half a segment asks again: no new try, no new warning.
    // (The warning comes before the failure is recorded, so wait for that.)
    REQUIRE(test::wait_until([&] { return spare.failed(); }));
    for (int i = 0; i < 10; ++i)
        CHECK_FALSE(spare.want());
    // The next segment (take() at its roll, none ready) gets one more try.
    CHECK(spare.take(dir.file("seg-2.log")) == -1);
    CHECK_FALSE(spare.failed());
    CHECK(spare.want());
    REQUIRE(test::wait_until([&] { return count(n_said) >= 2 && n_said >= 2; }));
    spare.stop();
    CHECK(count(n_said) == 2);
    CHECK(n_said == 2);
    CHECK(!spare.ready());
}
