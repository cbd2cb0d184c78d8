package dev.remocal.jetbrains.core.rpc;

import org.junit.jupiter.api.Test;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.nio.charset.StandardCharsets;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class FramingTest {
    static ByteArrayInputStream in(String s) {
        return new ByteArrayInputStream(s.getBytes(StandardCharsets.UTF_8));
    }

    @Test
    void roundTripsAndEndsCleanlyBetweenFrames() throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        byte[] a = "{\"a\":\"é\"}".getBytes(StandardCharsets.UTF_8);
        Framing.write(out, a);
        Framing.write(out, new byte[0]);
        ByteArrayInputStream r = new ByteArrayInputStream(out.toByteArray());
        assertArrayEquals(a, Framing.read(r, 100));
        assertArrayEquals(new byte[0], Framing.read(r, 100));
        assertNull(Framing.read(r, 100));
    }

    @Test
    void acceptsOtherHeadersAndAnyCase() throws IOException {
        byte[] b = Framing.read(in("content-length: 2\r\nContent-Type: application/vscode-jsonrpc; charset=utf-8\r\n\r\n{}"), 100);
        assertArrayEquals("{}".getBytes(StandardCharsets.UTF_8), b);
    }

    @Test
    void refusesWhatItCannotBound() {
        Framing.FramingException e = assertThrows(Framing.FramingException.class, () -> Framing.read(in("Content-Length: 101\r\n\r\n"), 100));
        assertTrue(e.getMessage().contains("over the limit"), e.getMessage());
        assertThrows(Framing.FramingException.class, () -> Framing.read(in("Content-Length: 99999999999999999999\r\n\r\n"), 100));
        assertThrows(Framing.FramingException.class, () -> Framing.read(in("X: " + "y".repeat(2000) + "\r\n\r\n"), 100));
        assertThrows(Framing.FramingException.class, () -> Framing.read(in("X: 1\r\n".repeat(20) + "\r\n"), 100));
        assertThrows(Framing.FramingException.class, () -> Framing.read(in("\r\n"), 100));
        assertThrows(Framing.FramingException.class, () -> Framing.read(in("garbage\r\n\r\n"), 100));
        assertThrows(EOFException.class, () -> Framing.read(in("Content-Length: 10\r\n\r\n{}"), 100));
        assertThrows(EOFException.class, () -> Framing.read(in("Content-Len"), 100));
    }
}
