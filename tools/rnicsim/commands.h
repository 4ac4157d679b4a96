// The commands of rnicsim that live outside main.cpp.
#pragma once

// rnicsim trace show|check|convert|schema (trace_cmd.cpp).
int trace_main(int argc, char** argv);
