package dev.remocal.jetbrains.core.protocol;

/** Stable error codes of the daemon (docs/daemon-protocol.md, "Errors"). */
public final class ErrorCodes {
    private ErrorCodes() {}

    public static final int PARSE_ERROR = -32700;
    public static final int INVALID_REQUEST = -32600;
    public static final int METHOD_NOT_FOUND = -32601;
    public static final int INVALID_PARAMS = -32602;
    public static final int INTERNAL_ERROR = -32603;
    public static final int NOT_INITIALIZED = -32002;
    public static final int REQUEST_CANCELLED = -32800;
    public static final int INVALID_CONFIG = 1001;
    public static final int TARGET_NOT_FOUND = 1002;
    public static final int SESSION_NOT_FOUND = 1003;
    public static final int CONFLICT = 1004;
    public static final int AGENT = 1005;
    public static final int UNSUPPORTED = 1006;
    public static final int BUSY = 1007;
    public static final int TARGET_REFUSED = 1008;
    /** The cluster's RBAC refused (1.1). */
    public static final int FORBIDDEN = 1009;
    /** The request needs the cluster's remocal operator and it has none (1.1). */
    public static final int NO_OPERATOR = 1010;
    /** An operator policy refused (protocol 1.2); ErrorData.policy names it and the rule. */
    public static final int POLICY = 1011;
    public static final int INTERNAL = 1099;
}
