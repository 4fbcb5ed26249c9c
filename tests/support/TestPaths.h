#pragma once

// Where the build put what the tests need (set by tests/CMakeLists.txt).
namespace clayhook::test {
inline constexpr const char* kSourceDir = CLAYHOOK_TEST_SOURCE_DIR;
inline constexpr const char* kBundledPluginDir = CLAYHOOK_TEST_BUNDLED_PLUGIN_DIR;
inline constexpr const char* kFixturePluginDir = CLAYHOOK_TEST_FIXTURE_PLUGIN_DIR;
inline constexpr const char* kClayhookBin = CLAYHOOK_TEST_BIN;
}  // namespace clayhook::test
