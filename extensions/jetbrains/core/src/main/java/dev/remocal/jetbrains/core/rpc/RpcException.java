package dev.remocal.jetbrains.core.rpc;

import com.google.gson.JsonElement;
import com.google.gson.JsonObject;

/**
 * A JSON-RPC error answer. The daemon's message is for humans and already says what to do;
 * {@link #reason()} is the stable name in {@code data.reason} ("invalid_config", "forbidden").
 */
public class RpcException extends Exception {
    private static final long serialVersionUID = 1L;

    private final int code;
    private final transient JsonElement data;

    public RpcException(int code, String message, JsonElement data) {
        super(message);
        this.code = code;
        this.data = data;
    }

    public int code() {
        return code;
    }

    public JsonElement data() {
        return data;
    }

    /** data.reason, or "" when the error has none. */
    public String reason() {
        if (data instanceof JsonObject o && o.get("reason") != null && o.get("reason").isJsonPrimitive()) {
            return o.get("reason").getAsString();
        }
        return "";
    }
}
