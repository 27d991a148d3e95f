namespace Kraud.HostRuntime.Images;

/// <summary>
/// A stream read once from its start to its end (a blob as it downloads, hashed or counted on its way): a subclass
/// only says how to read; <see cref="Stream.Position"/> is what was read so far, and nothing seeks or writes.
/// </summary>
internal abstract class ForwardReadStream : Stream
{
    /// <summary>The bytes read so far.</summary>
    public long BytesRead { get; private set; }

    protected abstract int ReadCore(Span<byte> buffer);

    public sealed override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public sealed override int Read(Span<byte> buffer)
    {
        var read = ReadCore(buffer);
        BytesRead += read;
        return read;
    }

    public sealed override bool CanRead => true;
    public sealed override bool CanSeek => false;
    public sealed override bool CanWrite => false;
    public sealed override long Length => throw new NotSupportedException();

    public sealed override long Position
    {
        get => BytesRead;
        set => throw new NotSupportedException();
    }

    public sealed override void Flush() { }
    public sealed override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public sealed override void SetLength(long value) => throw new NotSupportedException();
    public sealed override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}
