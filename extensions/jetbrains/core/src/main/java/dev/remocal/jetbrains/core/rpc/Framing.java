package dev.remocal.jetbrains.core.rpc;

import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.util.Locale;

/**
 * LSP framing: {@code Content-Length: N\r\n\r\n} then N bytes of JSON. Everything read is bounded:
 * a header line, the number of header lines and the body (16 MiB, the daemon's own limit).
 */
public final class Framing {
    private Framing() {}

    /** The daemon refuses bigger messages; so does the client. */
    public static final int DEFAULT_MAX_FRAME = 16 << 20;
    static final int MAX_HEADER_LINE = 1024;
    static final int MAX_HEADER_LINES = 16;

    /** A broken stream: the connection cannot continue. */
    public static final class FramingException extends IOException {
        private static final long serialVersionUID = 1L;

        public FramingException(String message) {
            super(message);
        }
    }

    /** Reads one frame's body; null at a clean end of stream (between frames). */
    public static byte[] read(InputStream in, int maxFrame) throws IOException {
        long length = -1;
        for (int lines = 0; ; lines++) {
            String line = readLine(in, lines == 0);
            if (line == null) {
                return null;
            }
            if (line.isEmpty()) {
                break;
            }
            if (lines >= MAX_HEADER_LINES) {
                throw new FramingException("more than " + MAX_HEADER_LINES + " header lines in a frame");
            }
            int colon = line.indexOf(':');
            if (colon < 0) {
                throw new FramingException("malformed header line " + quote(line));
            }
            String name = line.substring(0, colon).trim().toLowerCase(Locale.ROOT);
            if (name.equals("content-length")) {
                try {
                    length = Long.parseLong(line.substring(colon + 1).trim());
                } catch (NumberFormatException e) {
                    throw new FramingException("bad Content-Length " + quote(line));
                }
            }
        }
        if (length < 0) {
            throw new FramingException("a frame without Content-Length");
        }
        if (length > maxFrame) {
            throw new FramingException("a frame of " + length + " bytes, over the limit of " + maxFrame);
        }
        byte[] body = in.readNBytes((int) length);
        if (body.length != length) {
            throw new EOFException("the stream ended inside a frame (" + body.length + " of " + length + " bytes)");
        }
        return body;
    }

    /** One header line without its CRLF; null at end of stream before any byte if atStart. */
    private static String readLine(InputStream in, boolean atStart) throws IOException {
        StringBuilder sb = new StringBuilder();
        while (true) {
            int b = in.read();
            if (b < 0) {
                if (atStart && sb.length() == 0) {
                    return null;
                }
                throw new EOFException("the stream ended inside a frame header");
            }
            if (b == '\n') {
                int n = sb.length();
                return n > 0 && sb.charAt(n - 1) == '\r' ? sb.substring(0, n - 1) : sb.toString();
            }
            if (sb.length() >= MAX_HEADER_LINE) {
                throw new FramingException("a header line longer than " + MAX_HEADER_LINE + " bytes");
            }
            sb.append((char) b);
        }
    }

    /** Writes one frame; callers serialise writers. */
    public static void write(OutputStream out, byte[] body) throws IOException {
        out.write(("Content-Length: " + body.length + "\r\n\r\n").getBytes(StandardCharsets.US_ASCII));
        out.write(body);
        out.flush();
    }

    private static String quote(String s) {
        return "\"" + (s.length() > 80 ? s.substring(0, 80) + "..." : s) + "\"";
    }
}
