/* Public API: statuses, the last error message and the version (the part
 * that needs no model). */
#include "../core/common.h"

TG_API const char *tg_last_error(void) { return tg_error_message(); }

TG_API const char *tg_status_string(tg_status s)
{
    switch (s) {
    case TG_OK: return "ok";
    case TG_ERR_INVALID_ARGUMENT: return "invalid argument";
    case TG_ERR_OUT_OF_MEMORY: return "out of memory";
    case TG_ERR_IO: return "input/output error";
    case TG_ERR_DESCRIPTOR: return "invalid model descriptor";
    case TG_ERR_FORMAT: return "malformed checkpoint";
    case TG_ERR_DTYPE: return "unsupported tensor dtype";
    case TG_ERR_SHAPE: return "tensor shape mismatch";
    case TG_ERR_MISSING: return "tensor missing from checkpoint";
    case TG_ERR_NONFINITE: return "NaN or infinity";
    case TG_ERR_BACKEND: return "oneDNN backend failure";
    case TG_ERR_UNSUPPORTED: return "unsupported";
    case TG_ERR_STATE: return "invalid state for this call";
    case TG_ERR_INTERNAL: return "internal error";
    }
    return "unknown status";
}

TG_API uint32_t tg_version(void) { return TG_VERSION_NUMBER; }

TG_API const char *tg_version_string(void) { return TG_VERSION_STRING; }
