// Catch2 runner for tests that elaborate a SystemC model. libsystemc provides main() and calls
// sc_main, so the Catch session starts here. Kept in its own file: it is slow to compile and
// never changes.
#include <systemc>  // declares sc_main with the linkage libsystemc expects

#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

int sc_main(int argc, char** argv) { return Catch::Session().run(argc, argv); }
