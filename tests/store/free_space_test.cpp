// FreeSpace on a real small filesystem (a tmpfs mounted by the test): the
// refusal below the floor, how often it looks, and room coming back.
#include "store/FreeSpace.h"
#include "support/SmallFilesystem.h"
#include "support/TempDir.h"
#include "support/Wait.h"

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <string>

using namespace clayhook;
using namespace std::chrono_literals;

namespace {

constexpr uint64_t kMiB = 1024 * 1024;

void fill(const std::string& path, uint64_t bytes) {
    std::ofstream out(path, std::ios::binary);
    out << std::string(bytes, 'f');
    REQUIRE(out.good());
}

}  // namespace

TEST_CASE("free space: a floor of 0 never refuses", "[store][free-space]") {
    test::TempDir dir;
    FreeSpace space(dir.path().string(), 0);
    CHECK(space.check(uint64_t{1} << 60).empty());
    CHECK_FALSE(space.low());
    CHECK(space.room_for(1));
}

TEST_CASE(
    "free space: below the floor it refuses, naming the room and the floor, and "
    "looks again after an eighth of the floor counted or 100 ms",
    "[store][free-space]") {
    test::TempDir dir;
    const std::string mnt = dir.file("small");
    test::SmallFilesystem fs(mnt, "6m");
    FreeSpace space(mnt, 2 * kMiB);

    CHECK(space.check().empty());  // the first call looks
    CHECK_FALSE(space.low());
    CHECK(space.room_for(3 * kMiB));
    CHECK_FALSE(space.room_for(5 * kMiB));  // 6 MiB less the floor

    fill(mnt + "/filler", 5 * kMiB);
    // Not due yet: the answer of the last look (the test's own steps take
    // far less than 100 ms; if not, the look below says the same).
    const std::string early = space.check(1);
    // An eighth of the floor counted makes it look now.
    const std::string refusal = space.check(2 * kMiB / 8);
    INFO("early: " << early << "; refusal: " << refusal);
    CHECK_THAT(refusal, Catch::Contains("bytes free, below store.min_free_space (2097152)"));
    CHECK(space.low());
    CHECK(space.check() == refusal);  // not due: the same answer, no look
    CHECK_FALSE(space.room_for(1));

    std::filesystem::remove(mnt + "/filler");
    // Room again: the next look after 100 ms says so.
    REQUIRE(test::wait_until([&] { return space.check().empty(); }, 5s));
    CHECK_FALSE(space.low());
}

TEST_CASE("free space: a path statvfs cannot read keeps the last answer", "[store][free-space]") {
    test::TempDir dir;
    FreeSpace space(dir.file("no/such/folder"), uint64_t{1} << 60);
    CHECK(space.check(uint64_t{1} << 60).empty());  // nothing known: no refusal
    CHECK_FALSE(space.low());
    CHECK(space.room_for(1));  // the write itself will say
}
