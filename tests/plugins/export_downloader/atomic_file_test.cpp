// The export-downloader's atomic file (plugins/export-downloader/
// atomic_file.hpp): a hidden temporary file, written, fsynced, renamed into
// place, the folder fsynced; nothing left behind otherwise; errors carry the
// path and the errno text.
#include "export-downloader/atomic_file.hpp"
#include "export-downloader/outcome.hpp"
#include "support/TempDir.h"

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

using namespace clayhook::exportdl;
using clayhook::test::read_file;
using clayhook::test::TempDir;
namespace fs = std::filesystem;

namespace {

// The names in `dir`, sorted (hidden ones included).
std::vector<std::string> names_in(const fs::path& dir) {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(dir))
        out.push_back(e.path().filename().string());
    std::sort(out.begin(), out.end());
    return out;
}

// The retry `f` throws (disk errors are retries); fails when there is none.
std::string retry_reason(const std::function<void()>& f) {
    try {
        f();
    } catch (const Outcome& o) {
        CHECK_FALSE(o.final);
        return o.what();
    }
    FAIL("no Outcome thrown");
    return "";
}

}  // namespace

TEST_CASE("atomic file: write, finish and rename leave exactly the final file",
          "[export-downloader][atomic-file]") {
    TempDir dir;
    const fs::path final_path = dir.path() / "t_1_e_1.csv";
    {
        TempFile tmp(dir.path(), "t_1_e_1.csv");
        const std::string temp = tmp.path();
        CHECK_THAT(temp, Catch::StartsWith((dir.path() / ".t_1_e_1.csv.part-").string()));
        CHECK(fs::path(temp).filename().string().size() ==
              std::string(".t_1_e_1.csv.part-").size() + 6);
        // While it is written: the hidden temporary file only, mode 0640.
        CHECK(names_in(dir.path()) == std::vector<std::string>{fs::path(temp).filename().string()});
        struct stat st {};
        REQUIRE(::stat(temp.c_str(), &st) == 0);
        CHECK((st.st_mode & 0777) == 0640);
        // The descriptor is not inherited by children.
        CHECK((::fcntl(tmp.fd(), F_GETFD) & FD_CLOEXEC) != 0);

        tmp.write("id,name\n", 8);
        tmp.write("1,a\n", 4);
        tmp.write("", 0);
        CHECK_FALSE(fs::exists(final_path));
        tmp.finish();
        CHECK(tmp.fd() == -1);
        tmp.rename_to(final_path);
        CHECK(tmp.path().empty());
        fsync_dir(dir.path());
        CHECK_FALSE(fs::exists(temp));
    }  // the destructor of a renamed file removes nothing
    CHECK(names_in(dir.path()) == std::vector<std::string>{"t_1_e_1.csv"});
    CHECK(read_file(final_path.string()) == "id,name\n1,a\n");
    CHECK((fs::status(final_path).permissions() & fs::perms::all) ==
          (fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read));
}

TEST_CASE("atomic file: the rename replaces a file of that name whole",
          "[export-downloader][atomic-file]") {
    TempDir dir;
    const std::string target = dir.write("x.csv", "old contents, longer than the new\n");
    TempFile tmp(dir.path(), "x.csv");
    tmp.write("new\n", 4);
    tmp.finish();
    tmp.rename_to(target);
    fsync_dir(dir.path());
    CHECK(read_file(target) == "new\n");
    CHECK(names_in(dir.path()) == std::vector<std::string>{"x.csv"});
}

TEST_CASE("atomic file: a file not renamed leaves nothing", "[export-downloader][atomic-file]") {
    TempDir dir;
    SECTION("dropped while open") {
        TempFile tmp(dir.path(), "a.csv");
        tmp.write("partial", 7);
    }
    SECTION("dropped after finish") {
        TempFile tmp(dir.path(), "a.csv");
        tmp.write("whole", 5);
        tmp.finish();
    }
    SECTION("an exception on the way") {
        try {
            TempFile tmp(dir.path(), "a.csv");
            tmp.write("partial", 7);
            throw std::runtime_error("the download failed");
        } catch (const std::runtime_error&) {
        }
    }
    SECTION("several at once, for one name") {
        std::optional<TempFile> a, b;
        a.emplace(dir.path(), "a.csv");
        b.emplace(dir.path(), "a.csv");
        CHECK(a->path() != b->path());
        CHECK(names_in(dir.path()).size() == 2);
    }
    CHECK(names_in(dir.path()).empty());
}

TEST_CASE("atomic file: failures are retries with the path and the errno text",
          "[export-downloader][atomic-file]") {
    TempDir dir;
    SECTION("no such folder") {
        const fs::path missing = dir.path() / "missing";
        CHECK(retry_reason([&] { TempFile tmp(missing, "a.csv"); }) ==
              "cannot create a temporary file in " + missing.string() +
                  ": No such file or directory");
        CHECK(retry_reason([&] { fsync_dir(missing); }) ==
              "cannot open " + missing.string() + " to sync it: No such file or directory");
    }
    SECTION("a file where the folder should be") {
        const std::string file = dir.write("file", "x");
        CHECK(retry_reason([&] { TempFile tmp(file, "a.csv"); }) ==
              "cannot create a temporary file in " + file + ": Not a directory");
        CHECK(retry_reason([&] { fsync_dir(file); }) ==
              "cannot open " + file + " to sync it: Not a directory");
    }
    SECTION("a full disk") {
        // /dev/full in place of the temporary file's descriptor: every write
        // fails with ENOSPC, as on a full file system.
        TempFile tmp(dir.path(), "a.csv");
        int full = ::open("/dev/full", O_WRONLY | O_CLOEXEC);
        REQUIRE(full >= 0);
        REQUIRE(::dup2(full, tmp.fd()) == tmp.fd());
        ::close(full);
        CHECK(retry_reason([&] { tmp.write("abc", 3); }) ==
              "writing " + tmp.path() + " failed: No space left on device");
    }
    SECTION("a rename into a missing folder") {
        {
            TempFile tmp(dir.path(), "a.csv");
            tmp.write("abc", 3);
            tmp.finish();
            const fs::path target = dir.path() / "missing" / "a.csv";
            CHECK(retry_reason([&] { tmp.rename_to(target); }) ==
                  "renaming " + tmp.path() + " to " + target.string() +
                      " failed: No such file or directory");
            CHECK_FALSE(tmp.path().empty());  // still its own, removed below
        }
        CHECK(names_in(dir.path()).empty());
    }
    SECTION("a rename onto a folder") {
        fs::create_directory(dir.path() / "taken");
        dir.write("taken/inside", "x");
        {
            TempFile tmp(dir.path(), "a.csv");
            tmp.finish();
            CHECK_THAT(retry_reason([&] { tmp.rename_to(dir.path() / "taken"); }),
                       Catch::EndsWith("failed: Is a directory"));
        }
        CHECK(names_in(dir.path()) == std::vector<std::string>{"taken"});
    }
}

TEST_CASE("atomic file: name parts are cleaned to [A-Za-z0-9._-]",
          "[export-downloader][atomic-file]") {
    auto clean = [](std::string_view s) {
        bool changed = false;
        std::string out = clean_name_part(s, changed);
        return std::pair{out, changed};
    };
    CHECK(clean("t_abc123") == std::pair{std::string("t_abc123"), false});
    CHECK(clean("A-Z.0_9") == std::pair{std::string("A-Z.0_9"), false});
    CHECK(clean("") == std::pair{std::string(""), false});
    CHECK(clean("../../etc") == std::pair{std::string(".._.._etc"), true});
    CHECK(clean("a b/c\\d:e") == std::pair{std::string("a_b_c_d_e"), true});
    CHECK(clean("caf\xc3\xa9") == std::pair{std::string("caf__"), true});
    CHECK(clean(std::string_view("a\0b", 3)) == std::pair{std::string("a_b"), true});
    bool changed = true;  // never cleared
    CHECK(clean_name_part("ok", changed) == "ok");
    CHECK(changed);
}
