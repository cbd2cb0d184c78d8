package dev.remocal.jetbrains.core.rpc;

import java.io.IOException;

/** The connection went away before an answer arrived. */
public class ConnectionClosedException extends IOException {
    private static final long serialVersionUID = 1L;

    public ConnectionClosedException(String message, Throwable cause) {
        super(message, cause);
    }
}
