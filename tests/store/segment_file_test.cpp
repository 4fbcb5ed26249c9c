// Reading a journal segment file whole (SegmentFile), on real files in a
// fresh temp folder: every byte, the inode read, a missing file told apart
// from one that cannot be read.
#include "store/journal/SegmentFile.h"
#include "support/TempDir.h"

#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <string>

using namespace clayhook;

TEST_CASE("segment file: read whole, with the inode it was read from", "[journal]") {
    test::TempDir dir;
    std::string bytes(200'000, 'x');  // past the first read's spare room
    for (size_t i = 0; i < bytes.size(); ++i)
        bytes[i] = static_cast<char>(i * 7);
    const std::string path = dir.write("seg-0000000000000001.log", bytes);
    std::string error = "stale";
    const auto f = journal::read_segment_file(path, error);
    REQUIRE(f);
    CHECK(error.empty());
    CHECK(f->bytes == bytes);
    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    CHECK(f->ino == st.st_ino);
    CHECK(f->dev == st.st_dev);

    const std::string empty = dir.write("seg-0000000000000002.log", "");
    const auto e = journal::read_segment_file(empty, error);
    REQUIRE(e);
    CHECK(e->bytes.empty());
}

TEST_CASE("segment file: a missing one is no error, an unreadable one is", "[journal]") {
    test::TempDir dir;
    std::string error = "stale";
    CHECK_FALSE(journal::read_segment_file(dir.file("seg-0000000000000009.log"), error));
    CHECK(error.empty());
    // A folder opens but cannot be read.
    CHECK_FALSE(journal::read_segment_file(dir.path().string(), error));
    CHECK_THAT(error, Catch::Contains("cannot read") && Catch::Contains(dir.path().string()));
}
