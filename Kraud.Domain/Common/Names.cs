using System.Text.RegularExpressions;

namespace Kraud.Domain.Common;

/// <summary>Names that end up in DNS (pods, namespaces, hosts) follow RFC 1123 labels, as Kubernetes does.</summary>
public static partial class Names
{
    [GeneratedRegex("^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", RegexOptions.ExplicitCapture, matchTimeoutMilliseconds: 1000)]
    private static partial Regex DnsLabel();

    public static void RequireDnsLabel(string? value, string field)
    {
        if (string.IsNullOrEmpty(value) || !DnsLabel().IsMatch(value))
            throw DomainException.Validation(
                $"{field} '{value}' is not a valid name: use 1-63 lowercase letters, digits or '-', starting and ending with a letter or digit.");
    }

    public static void RequireText(string? value, string field, int maxLength = 200)
    {
        if (string.IsNullOrWhiteSpace(value))
            throw DomainException.Validation($"{field} must not be empty.");
        if (value.Length > maxLength)
            throw DomainException.Validation($"{field} is longer than {maxLength} characters.");
    }

    public static void RequireRange(int value, int min, int max, string field)
    {
        if (value < min || value > max)
            throw DomainException.Validation($"{field} must be between {min} and {max}, got {value}.");
    }
}
