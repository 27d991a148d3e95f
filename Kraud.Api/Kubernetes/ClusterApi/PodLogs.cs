namespace Kraud.Api.Kubernetes.ClusterApi;

/// <summary>kubectl logs: what the pod's microVM wrote. Not served yet (the control plane has no log path from host runtimes).</summary>
public static class PodLogs
{
    public static Task WriteAsync(HttpContext http, KubeItem pod, IServiceProvider services) =>
        throw new KubeApiException(501, "NotImplemented",
            $"logs of pod \"{pod.Name}\" are not available: Kraud does not collect microVM console output in the control plane yet");
}
