package dev.remocal.jetbrains.core.launch;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import static org.junit.jupiter.api.Assertions.assertEquals;

class EnvMergeTest {
    @ParameterizedTest(name = "{0}: [{1}] + [{2}]")
    @CsvSource(delimiter = '|', nullValues = "NULL", value = {
            "API_TOKEN|local|remote|remote",
            "API_TOKEN|NULL|remote|remote",
            "LD_PRELOAD|NULL|/b.so|/b.so",
            "LD_PRELOAD|/j.so|/b.so|/b.so:/j.so",
            "LD_PRELOAD|/j.so /k.so|/b.so|/b.so:/j.so:/k.so",
            "LD_PRELOAD|/b.so:/j.so|/b.so|/b.so:/j.so",
            "JAVA_TOOL_OPTIONS|-javaagent:a.jar|-Dx=1|-javaagent:a.jar -Dx=1",
            "JAVA_TOOL_OPTIONS|-javaagent:a.jar -Dx=1|-Dx=1|-javaagent:a.jar -Dx=1",
            "JAVA_TOOL_OPTIONS|-Dx=1|-Dx=1|-Dx=1",
            "_JAVA_OPTIONS|'  '|-Xss2m|-Xss2m",
            "NODE_OPTIONS|--inspect|--max-old-space-size=512|--inspect --max-old-space-size=512",
            "PYTHONPATH|/src|/srv/lib:/src|/src:/srv/lib",
            "CLASSPATH|a.jar|a.jar|a.jar",
    })
    void mergesOneVariable(String name, String launch, String session, String want) {
        String got = EnvMerge.mergeValue(name, launch, session);
        assertEquals(want, got);
        assertEquals(got, EnvMerge.mergeValue(name, got, session), "merging again changes nothing");
    }
}
