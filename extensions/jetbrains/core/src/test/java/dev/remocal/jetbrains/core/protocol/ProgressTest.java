package dev.remocal.jetbrains.core.protocol;

import com.google.gson.JsonParser;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class ProgressTest {
    @Test
    void picksTheReportsOfItsToken() {
        var params = JsonParser.parseString("{\"token\":\"start-1\",\"value\":{\"kind\":\"report\",\"message\":\"starting the agent and connecting to pid/4242\"}}");
        Progress p = Progress.of(Methods.PROGRESS, params, "start-1").orElseThrow();
        assertEquals("report", p.kind());
        assertEquals("starting the agent and connecting to pid/4242", p.message());
        assertTrue(Progress.of(Methods.PROGRESS, params, "start-2").isEmpty());
        assertTrue(Progress.of(Methods.SESSION_CHANGED, params, "start-1").isEmpty());
    }

    @Test
    void readsShowMessage() {
        var m = Progress.message(Methods.SHOW_MESSAGE, JsonParser.parseString("{\"type\":3,\"message\":\"remocal session s2: uses the oldest pod\"}")).orElseThrow();
        assertEquals(3, m.type);
        assertEquals("remocal session s2: uses the oldest pod", m.message);
    }
}
