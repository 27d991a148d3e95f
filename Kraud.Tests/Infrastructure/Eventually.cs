namespace Kraud.Tests.Infrastructure;

/// <summary>
/// Polls for something that happens outside this application's database: a guest's console or workload log, a host
/// runtime or CLI process, a port, a registry, a simulated driver's state. A read model of a stream (a pod, a host) is
/// awaited through <see cref="StreamCommits"/> instead, which reads again only after a commit to that stream
/// (<c>WaitForPodAsync</c>, <c>WaitForVolumeAsync</c>, <c>WaitForHostStateAsync</c>); async projections with
/// WaitForNonStaleProjectionDataAsync. Read models still polled here, and why: an app's health (composed from its parts'
/// pods and volumes, not one stream), what a Kubernetes client lists (polled as kubectl would), the console fixture's
/// pods (its own host, without the listener).
/// </summary>
public static class Eventually
{
    public static Task Until(Func<Task<bool>> condition, TimeSpan timeout, string what) => Until(condition, timeout, () => what);

    /// <param name="what">Told when the time is up: what was awaited, with what was seen instead.</param>
    public static async Task Until(Func<Task<bool>> condition, TimeSpan timeout, Func<string> what)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            if (await condition()) return;
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"Timed out after {timeout.TotalSeconds:F0} s waiting until {what()}.");
            await Task.Delay(50);
        }
    }

    public static async Task<T> Get<T>(Func<Task<T>> read, Func<T, bool> done, TimeSpan timeout, string what)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var value = await read();
            if (done(value)) return value;
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"Timed out after {timeout.TotalSeconds:F0} s waiting until {what}; last: {value}");
            await Task.Delay(50);
        }
    }
}
