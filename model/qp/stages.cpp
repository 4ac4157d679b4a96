#include "model/qp/stages.h"

// The behavioural stages are defined in the header, so that the demultiplexer's calls to them
// (when they are the stages in use) are direct and inlined.
