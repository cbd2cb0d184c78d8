package dev.remocal.jetbrains.core;

import com.google.gson.JsonElement;
import com.google.gson.JsonParser;
import dev.remocal.jetbrains.core.protocol.Json;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;

/** The golden vectors as test input: what the daemon really sends. */
public final class Vectors {
    private Vectors() {}

    public static JsonElement json(String name) {
        try {
            return JsonParser.parseString(Files.readString(TestRepo.root().resolve("protocol/testdata/daemon/" + name + ".json")));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    public static <T> T read(String name, Class<T> type) {
        return Json.GSON.fromJson(json(name), type);
    }
}
