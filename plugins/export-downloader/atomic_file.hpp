// Files for the export-downloader: a hidden temporary file beside the final
// one, written, fsynced, closed and renamed into place, then the folder
// fsynced; removed when it is not renamed. Every failure is a retry whose
// reason carries the path and the errno text.
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>
#include <string_view>

namespace clayhook::exportdl {

// strerror(errno)
std::string errno_text();

// fsync of a folder, so that the renames in it survive a crash.
void fsync_dir(const std::filesystem::path& dir);

// `dir`/.NAME.part-XXXXXX, mode 0640; unlinked by the destructor unless it
// was renamed.
class TempFile {
  public:
    TempFile(const std::filesystem::path& dir, const std::string& name);
    ~TempFile();
    TempFile(const TempFile&) = delete;
    TempFile& operator=(const TempFile&) = delete;

    // All of it, or a retry.
    void write(const char* p, size_t n);
    // fsync and close.
    void finish();
    // rename(2) to `target` (in the same folder: fsync_dir it after).
    void rename_to(const std::filesystem::path& target);

    // The temporary path (empty once renamed).
    const std::string& path() const { return path_; }
    // The open descriptor (-1 after finish()).
    int fd() const { return fd_; }

  private:
    int fd_ = -1;
    std::string path_;
};

// [A-Za-z0-9._-] only; anything else becomes '_', and `changed` is set.
std::string clean_name_part(std::string_view s, bool& changed);

}  // namespace clayhook::exportdl
