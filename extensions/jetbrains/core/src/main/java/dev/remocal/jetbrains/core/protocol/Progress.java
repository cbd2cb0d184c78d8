package dev.remocal.jetbrains.core.protocol;

import com.google.gson.JsonElement;
import com.google.gson.JsonObject;

import java.util.Optional;

/**
 * One {@code $/progress} report of a request that carried a workDoneToken (a session starting on
 * a cluster: which pod was chosen, the agent's Job starting), for the IDE's progress text.
 *
 * @param kind "begin", "report" or "end"
 */
public record Progress(String token, String kind, String title, String message) {
    /** The report, when method is $/progress for this token. */
    public static Optional<Progress> of(String method, JsonElement params, String token) {
        if (!Methods.PROGRESS.equals(method) || params == null || !params.isJsonObject()) {
            return Optional.empty();
        }
        Protocol.ProgressParams p = Json.GSON.fromJson(params, Protocol.ProgressParams.class);
        if (p.token == null || !p.token.isJsonPrimitive() || !p.token.getAsString().equals(token) || p.value == null) {
            return Optional.empty();
        }
        return Optional.of(new Progress(token, str(p.value, "kind"), str(p.value, "title"), str(p.value, "message")));
    }

    /** A window/showMessage: its type (1 error, 2 warning, 3 info) and text. */
    public static Optional<Protocol.ShowMessage> message(String method, JsonElement params) {
        if (!Methods.SHOW_MESSAGE.equals(method) || params == null || !params.isJsonObject()) {
            return Optional.empty();
        }
        return Optional.of(Json.GSON.fromJson(params, Protocol.ShowMessage.class));
    }

    private static String str(JsonObject o, String k) {
        JsonElement e = o.get(k);
        return e != null && e.isJsonPrimitive() ? e.getAsString() : null;
    }
}
