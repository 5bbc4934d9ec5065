using System;
using System.Collections.Generic;
using TorchSharp;
using static TorchSharp.torch;

namespace Mpo.Data.Batching;

/// <summary>
/// An int64 [rows, columns] matrix on the host, row-major: token ids, masks or labels of a batch before they become
/// a tensor. Batching stays plain arrays (cheap to test, nothing to dispose) until <see cref="ToTensor"/>.
/// </summary>
public sealed class TokenMatrix
{
    private readonly long[] values;

    /// <summary>Wraps <paramref name="values"/> (not copied) as a [rows, columns] matrix.</summary>
    /// <exception cref="ArgumentException">The length is not rows × columns.</exception>
    public TokenMatrix(int rows, int columns, long[] values)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(rows);
        ArgumentOutOfRangeException.ThrowIfNegative(columns);
        ArgumentNullException.ThrowIfNull(values);
        if (values.Length != (long)rows * columns)
            throw new ArgumentException($"{values.Length} values cannot fill a {rows} × {columns} matrix.", nameof(values));
        Rows = rows;
        Columns = columns;
        this.values = values;
    }

    /// <summary>Rows (the batch size).</summary>
    public int Rows { get; }

    /// <summary>Columns (the padded sequence length).</summary>
    public int Columns { get; }

    /// <summary>The entry at (<paramref name="row"/>, <paramref name="column"/>).</summary>
    public long this[int row, int column] => values[row * Columns + column];

    /// <summary>One row.</summary>
    public ReadOnlySpan<long> Row(int row) => values.AsSpan(row * Columns, Columns);

    /// <summary>A copy of one row, for callers that cannot hold a span (F#, LINQ).</summary>
    public long[] RowArray(int row) => Row(row).ToArray();

    /// <summary>
    /// Rows of different lengths, right-padded with <paramref name="fill"/> to the longest (or to
    /// <paramref name="width"/> when given).
    /// </summary>
    /// <exception cref="ArgumentException">A row is longer than <paramref name="width"/>.</exception>
    public static TokenMatrix Pad(IReadOnlyList<IReadOnlyList<long>> rows, long fill, int? width = null)
    {
        ArgumentNullException.ThrowIfNull(rows);
        var columns = width ?? 0;
        if (width is null)
            foreach (var row in rows)
                columns = Math.Max(columns, row.Count);
        var values = new long[rows.Count * columns];
        Array.Fill(values, fill);
        for (var r = 0; r < rows.Count; r++)
        {
            if (rows[r].Count > columns)
                throw new ArgumentException($"Row {r} has {rows[r].Count} entries, more than the width {columns}.", nameof(rows));
            for (var c = 0; c < rows[r].Count; c++)
                values[r * columns + c] = rows[r][c];
        }
        return new TokenMatrix(rows.Count, columns, values);
    }

    /// <summary>A new int64 tensor [rows, columns] with these values on <paramref name="device"/> (CPU by default).</summary>
    public Tensor ToTensor(Device? device = null) => torch.tensor(values, [Rows, Columns], dtype: ScalarType.Int64, device: device);
}
