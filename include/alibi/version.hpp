#pragma once
// Library version, also exported to CMake (alibiConfigVersion.cmake) and pkg-config (alibi.pc).
#define ALIBI_VERSION_MAJOR 0
#define ALIBI_VERSION_MINOR 1
#define ALIBI_VERSION_PATCH 0
#define ALIBI_VERSION_STRING "0.1.0"
#define ALIBI_VERSION (ALIBI_VERSION_MAJOR * 10000 + ALIBI_VERSION_MINOR * 100 + ALIBI_VERSION_PATCH)
