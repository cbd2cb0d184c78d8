package dev.remocal.jetbrains.core.daemon;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class ProtocolVersionTest {
    @ParameterizedTest(name = "daemon {0}, needed {1}")
    @CsvSource(nullValues = "NULL", value = {
            "1.1,1.1,''",
            "1.7,1.1,''",
            "1.0,1.1,speaks protocol 1.0, but this plugin needs 1.1 or a later 1.x; update remocal",
            "2.0,1.1,speaks protocol 2.0, but this plugin speaks 1.1; update the remocal plugin",
            "0.9,1.1,speaks protocol 0.9, but this plugin needs 1.1",
            "NULL,1.1,reports no protocol version, so it is older than 1.1",
            "one,1.1,reports protocol version \"one\", which is not MAJOR.MINOR",
    })
    void checksCompatibility(String reported, String needed, String want) {
        var got = ProtocolVersion.incompatibility(reported, "0.3.0", "/usr/local/bin/remocal", ProtocolVersion.parse(needed).orElseThrow());
        if (want.isEmpty()) {
            assertTrue(got.isEmpty(), got::toString);
            return;
        }
        assertTrue(got.isPresent());
        assertTrue(got.get().contains(want), got.get());
        assertTrue(got.get().contains("remocal 0.3.0") && got.get().contains("/usr/local/bin/remocal"), got.get());
    }

    @ParameterizedTest
    @CsvSource({"1.1,1,1", "10.20,10,20"})
    void parses(String s, int major, int minor) {
        assertEquals(new ProtocolVersion(major, minor), ProtocolVersion.parse(s).orElseThrow());
    }
}
