package dev.remocal.jetbrains.core.config;

import dev.remocal.jetbrains.core.Vectors;
import dev.remocal.jetbrains.core.protocol.Protocol;
import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;

class ConfigDiscoveryTest {
    @Test
    void readsWhatTheChooserNeeds() {
        ConfigDiscovery.Resolved r = ConfigDiscovery.from(Vectors.read("remocal.config.resolve.result", Protocol.ConfigResult.class));
        assertEquals("/home/alice/inventory/.remocal/config.json", r.file());
        assertEquals("pid/4242", r.target());
        assertNull(r.incoming());
    }

    @Test
    void problemsReadLikeACompilersMessages() {
        ConfigDiscovery.Resolved r = ConfigDiscovery.from(Vectors.read("remocal.config.verify.result", Protocol.ConfigResult.class));
        assertFalse(r.valid());
        assertNull(r.target());
        assertEquals(List.of("config.json:3:34 $.network.incoming.mode: got \"copy\", expected one of \"mirror\", \"steal\", \"off\""), r.problemLines());
    }
}
