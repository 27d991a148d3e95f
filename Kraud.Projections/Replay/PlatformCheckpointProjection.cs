using Kraud.Projections.Common;

namespace Kraud.Projections.Replay;

/// <summary>
/// Builds the platform projection's checkpoints: folds the log in sequence order, in batches, and stores the state
/// every <c>everyEvents</c> events, or when events wait and the last checkpoint is older than <c>everyInterval</c>.
/// It only goes as far as it is told (the async daemon's high-water mark in the application), so a transaction still
/// open below that mark can never be skipped. Not thread-safe: one caller at a time.
/// </summary>
public sealed class PlatformCheckpointProjection(PlatformCheckpoints checkpoints, int everyEvents, TimeSpan everyInterval,
    TimeProvider time)
{
    public const string Name = "PlatformCheckpoints";

    private PlatformState? _state;
    private long _seq;
    private long _pending;
    private DateTimeOffset _minAt = DateTimeOffset.MaxValue;
    private DateTimeOffset _maxAt = DateTimeOffset.MinValue;
    private DateTimeOffset _lastWritten;

    public PlatformCheckpoints Checkpoints => checkpoints;

    /// <summary>The last sequence number folded (checkpointed or waiting for the next checkpoint).</summary>
    public long Position => _seq;

    /// <summary>Folds every event up to <paramref name="upTo"/> and writes the checkpoints that fall due.</summary>
    public async Task CatchUpAsync(long upTo, RebuildProgress? progress, CancellationToken ct)
    {
        if (_state is null) await ResumeAsync(ct);
        progress?.Begin(Math.Max(0, upTo - _seq));
        if (_seq < upTo)
        {
            var events = checkpoints.Reader.ReadAsync("seq_id > @from and seq_id <= @to",
                new Dictionary<string, object> { ["from"] = _seq, ["to"] = upTo }, _state!, ct);
            var read = 0;
            await foreach (var e in events)
            {
                if (e.Data is not null) _state!.Apply(e.StreamId, e.Data);
                _seq = e.Seq;
                if (e.At < _minAt) _minAt = e.At;
                if (e.At > _maxAt) _maxAt = e.At;
                if (++_pending >= everyEvents) await WriteAsync(ct);
                if (++read % 10_000 == 0) progress?.Advance(10_000);
            }
            progress?.Advance(read % 10_000);
            // Numbers the sequence gave to transactions that rolled back stay gaps for ever below the high-water mark.
            _seq = upTo;
        }
        if (_pending > 0 && time.GetUtcNow() - _lastWritten >= everyInterval) await WriteAsync(ct);
    }

    /// <summary>
    /// Forgets every checkpoint after <paramref name="floor"/> and folds the log again from there up to
    /// <paramref name="upTo"/>: from event 0, or from the cut up to which archived events were removed.
    /// </summary>
    public async Task RebuildAsync(long upTo, long floor, RebuildProgress? progress, CancellationToken ct)
    {
        await checkpoints.ClearAsync(floor, ct);
        _state = null;
        await CatchUpAsync(upTo, progress, ct);
    }

    /// <summary>Forgets the state in memory (after a failed round): the next round resumes from the last stored checkpoint.</summary>
    public void Reset() => _state = null;

    private async Task ResumeAsync(CancellationToken ct)
    {
        await checkpoints.EnsureSchemaAsync(ct);
        var latest = await checkpoints.LatestAsync(ct);
        _seq = latest?.Seq ?? 0;
        _state = await checkpoints.LoadAsync(_seq, ct);
        _maxAt = latest?.MaxAt ?? DateTimeOffset.MinValue;
        _minAt = DateTimeOffset.MaxValue;
        _pending = 0;
        _lastWritten = time.GetUtcNow();
    }

    private async Task WriteAsync(CancellationToken ct)
    {
        await checkpoints.WriteAsync(_state!, _seq, _minAt, _maxAt, _pending, ct);
        _pending = 0;
        _minAt = DateTimeOffset.MaxValue;
        _lastWritten = time.GetUtcNow();
    }
}
