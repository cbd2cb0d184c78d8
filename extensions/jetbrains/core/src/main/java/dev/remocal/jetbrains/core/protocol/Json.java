package dev.remocal.jetbrains.core.protocol;

import com.google.gson.Gson;
import com.google.gson.GsonBuilder;

/** The one gson configuration the core reads and writes the daemon's JSON with. */
public final class Json {
    private Json() {}

    /**
     * Nulls are not written (the daemon omits empty optional fields) and HTML characters are not
     * escaped (messages carry quotes and angle brackets that must reach the user unchanged).
     */
    public static final Gson GSON = new GsonBuilder().disableHtmlEscaping().create();
}
